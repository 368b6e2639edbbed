// The serial line between a lab VM and its BMC: node serial-relay.mjs <bmcPort> <vmPort>
// Listens on 127.0.0.1 for the BMC (ipmi_sim's SOL connects to bmcPort) and for the VM (QEMU's serial port
// connects to vmPort as a client, reconnecting after every power cycle), and passes bytes both ways. It outlives
// the VM, so the BMC's connection stays up across power cycles as a real server's serial line does: ipmi_sim
// otherwise retries a lost serial connection only every ~20 s and misses the boot. Plain JS: runs on bare node.
import net from "node:net";

const [bmcPort, vmPort] = process.argv.slice(2).map(Number);
if (!bmcPort || !vmPort) {
  console.error("usage: serial-relay.mjs <bmcPort> <vmPort>");
  process.exit(2);
}
const ends = { bmc: null, vm: null };

function side(name, other) {
  return net.createServer((sock) => {
    ends[name]?.destroy(); // one connection per side: the newest wins (a restarted QEMU, a reconnecting BMC)
    ends[name] = sock;
    sock.setNoDelay(true);
    sock.on("data", (d) => ends[other]?.write(d));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      if (ends[name] === sock) ends[name] = null;
    });
  });
}

const servers = [side("bmc", "vm").listen(bmcPort, "127.0.0.1"), side("vm", "bmc").listen(vmPort, "127.0.0.1")];
let listening = 0;
for (const s of servers) {
  s.on("listening", () => ++listening === servers.length && console.log("ready"));
  s.on("error", (e) => {
    console.error(`serial-relay: ${e.message}`);
    process.exit(1);
  });
}
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
