package io.lora4j.kernels;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks the outer loop variable of a kernel as parallel. Same targets and retention as TornadoVM's
 * {@code uk.ac.manchester.tornado.api.annotations.Parallel}; TornadoVM accepts this one by name
 * through {@code -Dtornado.load.annotation.parallel=io.lora4j.kernels.Parallel}. On the JVM it is
 * ignored, so every kernel is ordinary sequential Java there (that is how its math is tested).
 */
@Target({ElementType.LOCAL_VARIABLE, ElementType.TYPE, ElementType.TYPE_USE, ElementType.TYPE_PARAMETER})
@Retention(RetentionPolicy.RUNTIME)
public @interface Parallel {
}
