#!/usr/bin/python3
"""Read a NetworkManager keyfile (stdin) with libnm's own keyfile reader (NM.keyfile_read, the code NetworkManager
itself uses), normalize and verify the connection, and print it written back by NM.keyfile_write as JSON
{section: {key: value}}. Keys libnm does not know are dropped on the way, so the caller can compare.
Exits 2 with the error when libnm refuses the file. Needs python3-gi and gir1.2-nm-1.0 (Debian)."""
import json
import sys

import gi

gi.require_version("NM", "1.0")
gi.require_version("GLib", "2.0")
from gi.repository import GLib, NM  # noqa: E402

text = sys.stdin.read()
kf = GLib.KeyFile()
try:
    kf.load_from_data(text, len(text.encode()), GLib.KeyFileFlags.NONE)
    con = NM.keyfile_read(kf, "/etc/NetworkManager/system-connections", NM.KeyfileHandlerFlags.NONE, None, None)
    con.normalize()
    con.verify()
    out = NM.keyfile_write(con, NM.KeyfileHandlerFlags.NONE, None, None)
except GLib.Error as e:
    print(e.message, file=sys.stderr)
    sys.exit(2)
result = {}
for group in out.get_groups()[0]:
    result[group] = {k: out.get_value(group, k) for k in out.get_keys(group)[0]}
print(json.dumps({"nm": f"{NM.MAJOR_VERSION}.{NM.MINOR_VERSION}.{NM.MICRO_VERSION}", "keyfile": result}))
