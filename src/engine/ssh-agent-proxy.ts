/**
 * RUN --mount=type=ssh: a unix socket inside the sandbox's reach whose connections are forwarded
 * to the caller's ssh agent (`--ssh ID=SOCKET`), so the agent's own socket is never mounted.
 */
import * as net from 'node:net';

export /** A unix socket at `at` whose connections are forwarded to the agent at `agent`. */
function agentProxy(agent: string, at: string): Promise<{ close(): Promise<void> }> {
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    conns.add(c);
    const up = net.connect(agent);
    conns.add(up);
    const end = () => {
      c.destroy();
      up.destroy();
      conns.delete(c);
      conns.delete(up);
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    c.pipe(up);
    up.pipe(c);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at, () => {
      server.off('error', reject);
      resolve({
        close: () =>
          new Promise<void>((res) => {
            for (const c of conns) c.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}
