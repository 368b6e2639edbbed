import type pg from "pg";
import { createPgPool, type PgOptions } from "./client";

/**
 * The pool to give @socket.io/postgres-adapter (0.5): its own, of two connections, one holding the adapter's
 * LISTEN and one publishing. Two things found on a real PostgreSQL (socketio-adapter.int.test.ts):
 * - On the process's main pool, the adapter's NOTIFYs leave on several connections at once and arrive out of order;
 *   on one publishing connection they keep the order of the emits (packets through the attachments table, big or
 *   binary, still take an INSERT first and may be overtaken: ordered streams carry sequence numbers).
 * - The adapter never releases its LISTEN client. When that connection dies (a PostgreSQL restart or failover), it
 *   takes a new one and the dead one keeps its pool slot: after a restart, a pool of two had no connection left to
 *   publish on. Here a LISTEN client checked out with `connect()` (promise form, the adapter's) is released by the
 *   pool itself when its connection ends. `pool.query` uses the callback form and releases its own clients.
 */
export function createAdapterPool(url: string, opts: Pick<PgOptions, "applicationName"> = {}): pg.Pool {
  const pool = createPgPool(url, { max: 2, applicationName: opts.applicationName ?? "rackhand-socketio" });
  const connect = pool.connect.bind(pool) as (cb?: (err: Error | undefined, client: pg.PoolClient, done: (release?: unknown) => void) => void) => Promise<pg.PoolClient> | void;
  pool.connect = ((cb?: Parameters<typeof connect>[0]) => {
    if (cb) return connect(cb);
    return (connect() as Promise<pg.PoolClient>).then((client) => {
      let released = false;
      const release = client.release.bind(client);
      client.release = (err?: Error | boolean) => {
        if (released) return;
        released = true;
        release(err);
      };
      client.once("end", () => client.release(new Error("connection ended")));
      return client;
    });
  }) as typeof pool.connect;
  return pool;
}
