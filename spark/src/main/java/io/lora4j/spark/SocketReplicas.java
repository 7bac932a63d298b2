package io.lora4j.spark;

import io.lora4j.model.train.Replicas;
import org.apache.spark.BarrierTaskContext;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The replicas of a barrier stage exchanging gradients over direct TCP connections, one between every
 * two tasks: their addresses (and a per-task secret a connecting task must present) are exchanged once
 * with {@link BarrierTaskContext#allGather}, which costs about a second a call; after that a step's
 * exchange is a write to and a read from each peer.
 */
final class SocketReplicas implements Replicas, AutoCloseable {
    private final int index, count;
    private final Socket[] peers;
    private final DataInputStream[] in;
    private final DataOutputStream[] out;
    private final ExecutorService writers = Executors.newVirtualThreadPerTaskExecutor();

    /** Connects the tasks: each listens on {@code host}, connects to every lower-numbered task and accepts every higher one. */
    SocketReplicas(BarrierTaskContext ctx, int index, int count, String host) {
        this.index = index;
        this.count = count;
        peers = new Socket[count];
        in = new DataInputStream[count];
        out = new DataOutputStream[count];
        byte[] secret = new byte[16];
        new SecureRandom().nextBytes(secret);
        try (ServerSocket server = new ServerSocket(0, count, InetAddress.getByName(host))) {
            String[] all = ctx.allGather(host + " " + server.getLocalPort() + " " + HexFormat.of().formatHex(secret));
            for (int j = 0; j < index; j++) {
                String[] a = all[j].split(" ");
                Socket s = new Socket(a[0], Integer.parseInt(a[1]));
                connect(j, s);
                out[j].writeInt(index);
                out[j].write(HexFormat.of().parseHex(a[2]));
                out[j].flush();
            }
            for (int k = index + 1; k < count; k++) {
                Socket s = server.accept();
                DataInputStream d = new DataInputStream(s.getInputStream());
                int who = d.readInt();
                byte[] given = new byte[16];
                d.readFully(given);
                if (who <= index || who >= count || peers[who] != null || !java.security.MessageDigest.isEqual(given, secret)) {
                    s.close();
                    throw new IOException("an unexpected connection to task " + index + "'s gradient port");
                }
                connect(who, s);
            }
        } catch (IOException e) {
            close();
            throw new UncheckedIOException("connecting the training tasks: " + e.getMessage(), e);
        }
    }

    private void connect(int j, Socket s) throws IOException {
        s.setTcpNoDelay(true);
        peers[j] = s;
        in[j] = new DataInputStream(new java.io.BufferedInputStream(s.getInputStream(), 1 << 16));
        out[j] = new DataOutputStream(new java.io.BufferedOutputStream(s.getOutputStream(), 1 << 16));
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public List<byte[]> exchange(byte[] mine) {
        try {
            List<Future<?>> sent = new ArrayList<>();
            for (int j = 0; j < count; j++) {
                if (j != index) {
                    DataOutputStream o = out[j];
                    sent.add(writers.submit(() -> {
                        o.writeInt(mine.length);
                        o.write(mine);
                        o.flush();
                        return null;
                    }));
                }
            }
            List<byte[]> all = new ArrayList<>(count);
            for (int j = 0; j < count; j++) {
                if (j == index) {
                    all.add(mine);
                } else {
                    byte[] b = new byte[in[j].readInt()];
                    in[j].readFully(b);
                    all.add(b);
                }
            }
            for (Future<?> f : sent) {
                f.get();
            }
            return all;
        } catch (IOException e) {
            throw new UncheckedIOException("exchanging gradients: " + e.getMessage(), e);
        } catch (Exception e) {
            throw new IllegalStateException("exchanging gradients: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        writers.shutdownNow();
        for (Socket s : peers) {
            if (s != null) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing
                }
            }
        }
    }
}
