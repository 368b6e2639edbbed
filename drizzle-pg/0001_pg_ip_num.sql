-- ip_num(text): IPv4 dotted quad -> its 32-bit number, for sorting addresses numerically in SQL (the machines list's
-- "ip" order, server/machines/queries.ts). SQLite registers the same function in server/db/client.ts; anything else
-- than four dot-separated decimal numbers gives NULL there and here.
CREATE OR REPLACE FUNCTION ip_num(ip text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT CASE WHEN ip ~ '^[0-9]{1,10}\.[0-9]{1,10}\.[0-9]{1,10}\.[0-9]{1,10}$' THEN
    ((split_part(ip, '.', 1)::bigint * 256 + split_part(ip, '.', 2)::bigint) * 256 + split_part(ip, '.', 3)::bigint) * 256
      + split_part(ip, '.', 4)::bigint
  END
$$;
