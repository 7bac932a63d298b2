#pragma OPENCL EXTENSION cl_khr_fp64 : enable  
#pragma OPENCL EXTENSION cl_khr_fp16 : enable  
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable  
__kernel void forwardNaive(__global long *_kernel_context, __constant uchar *_constant_region, __local uchar *_local_region, __global int *_atomics, __global uchar *out, __global uchar *x, __global uchar *w, __private int T, __private int rows, __private int cols)
{
  ulong ul_67, ul_1, ul_2, ul_18, ul_74, ul_0; 
  long l_66, l_17, l_65, l_16, l_64, l_15, l_73, l_72, l_71; 
  int i_25, i_26, i_5, i_6, i_70, i_3, i_4, i_63, i_32, i_13, i_14, i_11, i_75, i_9, i_10, i_7, i_8; 
  float f_35, f_34, f_69, f_68, f_39, f_41, f_12, f_46, f_48, f_50, f_53, f_52, f_23, f_54, f_57, f_24, f_27, f_58, f_61, f_29, f_31, f_62, f_30, f_33; 
  short sh_42, sh_55, sh_56, sh_21, sh_19, sh_20, sh_36, sh_49, sh_47, sh_45, sh_59, sh_44; 
  bool b_51, b_22, b_38, b_37, b_40, b_60, b_28, b_43; 

  // BLOCK 0
  ul_0  =  (ulong) out;
  ul_1  =  (ulong) x;
  ul_2  =  (ulong) w;
  i_3  =  get_global_size(0);
  i_4  =  get_global_id(0);
  // BLOCK 1 MERGES [0 33 ]
  i_5  =  i_4;
  for(;i_5 < 64;)
  {
    // BLOCK 2
    i_6  =  i_5 >> 31;
    i_7  =  i_6 >> 26;
    i_8  =  i_7 + i_5;
    i_9  =  i_8 & -64;
    i_10  =  i_5 % 64;
    i_11  =  i_10 << 6;
    // BLOCK 3 MERGES [2 32 ]
    f_12  =  0.0F;
    i_13  =  0;
    for(;i_13 < 64;)
    {
      // BLOCK 4
      i_14  =  i_11 + i_13;
      l_15  =  (long) i_14;
      l_16  =  l_15 << 1;
      l_17  =  l_16 + 16L;
      ul_18  =  ul_2 + l_17;
      sh_19  =  *((__global short *) ul_18);
      sh_20  =  sh_19 & 1023;
      sh_21  =  sh_19 >> 10;
      b_22  =  (sh_21 & 31) == 0;
      if(b_22)
      {
        // BLOCK 5
        // BLOCK 6 MERGES [5 10 ]
        f_23  =  1.0F;
        f_24  =  0.5F;
        i_25  =  24;
        for(;i_25 >= 1;)
        {
          // BLOCK 7
          i_26  =  i_25 >> 1;
          f_27  =  f_24 * f_24;
          b_28  =  (i_25 & 1) == 0;
          if(b_28)
          {
            // BLOCK 8
            f_29  =  f_23;
          }  // B7
          else
          {
            // BLOCK 9
            f_30  =  f_23 * f_24;
            f_29  =  f_30;
          }  // B7
          // BLOCK 10 MERGES [8 9 ]
          f_31  =  f_27;
          i_32  =  i_26;
          f_23  =  f_29;
          f_24  =  f_31;
          i_25  =  i_32;
        }  // B6
        // BLOCK 11
        f_33  =  (float) sh_20;
        f_34  =  f_33 * f_23;
        f_35  =  f_34;
      }  // B4
      else
      {
        // BLOCK 12
        sh_36  =  sh_21 & 31;
        b_37  =  sh_36 == 31;
        if(b_37)
        {
          // BLOCK 13
          b_38  =  (sh_19 & 1023) == 0;
          if(b_38)
          {
            // BLOCK 14
            f_39  =  1.0F / 0.0F;
            f_35  =  f_39;
          }  // B13
          else
          {
            // BLOCK 15
            f_35  =  NaNF;
          }  // B13
        }  // B12
        else
        {
          // BLOCK 16
          b_40  =  sh_36 >= 0 && sh_36 < 25;
          if(b_40)
          {
            // BLOCK 17
            f_41  =  0.5F;
          }  // B16
          else
          {
            // BLOCK 18
            f_41  =  2.0F;
          }  // B16
          // BLOCK 19 MERGES [17 18 ]
          sh_42  =  sh_36 + -25;
          b_43  =  sh_36 >= 0 && sh_36 < 25;
          if(b_43)
          {
            // BLOCK 20
            sh_44  =  -sh_42;
            sh_45  =  sh_44;
          }  // B19
          else
          {
            // BLOCK 21
            sh_45  =  sh_42;
          }  // B19
          // BLOCK 22 MERGES [20 21 ]
          f_46  =  f_41;
          sh_47  =  sh_45;
          // BLOCK 23 MERGES [22 27 ]
          f_48  =  1.0F;
          f_46  =  f_41;
          sh_47  =  sh_45;
          for(;sh_47 >= 1;)
          {
            // BLOCK 24
            sh_49  =  sh_47 >> 1;
            f_50  =  f_46 * f_46;
            b_51  =  (sh_47 & 1) == 0;
            if(b_51)
            {
              // BLOCK 25
              f_52  =  f_48;
            }  // B24
            else
            {
              // BLOCK 26
              f_53  =  f_48 * f_46;
              f_52  =  f_53;
            }  // B24
            // BLOCK 27 MERGES [25 26 ]
            f_54  =  f_50;
            sh_55  =  sh_49;
            f_48  =  f_52;
            f_46  =  f_54;
            sh_47  =  sh_55;
          }  // B23
          // BLOCK 28
          sh_56  =  sh_20 + 1024;
          f_57  =  (float) sh_56;
          f_58  =  f_57 * f_48;
          f_35  =  f_58;
        }  // B12
      }  // B4
      // BLOCK 29 MERGES [11 14 28 15 ]
      sh_59  =  sh_19 >> 15;
      b_60  =  (sh_59 & 1) == 0;
      if(b_60)
      {
        // BLOCK 30
        f_61  =  f_35;
      }  // B29
      else
      {
        // BLOCK 31
        f_62  =  -f_35;
        f_61  =  f_62;
      }  // B29
      // BLOCK 32 MERGES [31 30 ]
      i_63  =  i_9 + i_13;
      l_64  =  (long) i_63;
      l_65  =  l_64 << 2;
      l_66  =  l_65 + 16L;
      ul_67  =  ul_1 + l_66;
      f_68  =  *((__global float *) ul_67);
      f_69  =  fma(f_61, f_68, f_12);
      i_70  =  i_13 + 1;
      f_12  =  f_69;
      i_13  =  i_70;
    }  // B3
    // BLOCK 33
    l_71  =  (long) i_5;
    l_72  =  l_71 << 2;
    l_73  =  l_72 + 16L;
    ul_74  =  ul_0 + l_73;
    *((__global float *) ul_74)  =  f_12;
    i_75  =  i_3 + i_5;
    i_5  =  i_75;
  }  // B1
  // BLOCK 34
  return;
}  //  kernel
