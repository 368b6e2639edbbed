-- The table @socket.io/postgres-adapter keeps packets in that do not fit a NOTIFY (over 8,000 bytes, or binary such
-- as console bytes): msgpack'd, their id sent by NOTIFY, removed by the adapter after its cleanup interval.
-- Outside the twin schemas (server/db/pg/schema): it belongs to the adapter, not to the model.
CREATE TABLE IF NOT EXISTS socket_io_attachments (
  id bigserial UNIQUE,
  created_at timestamptz DEFAULT now(),
  payload bytea
);
