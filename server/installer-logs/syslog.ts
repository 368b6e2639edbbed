/**
 * Syslog messages as installers send them over UDP: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`)
 * and RFC 3164 / BSD (`<PRI>Mmm dd hh:mm:ss [HOST ]TAG[PID]: MSG`; d-i sends no host name, busybox syslogd and
 * anaconda's rsyslog do). Our own small parser: the npm syslog parsers are unmaintained (glossy: 2016).
 * Whatever follows the header is kept as the message; control characters are replaced so one datagram is one
 * log line.
 */
export interface SyslogMessage {
  format: "rfc5424" | "rfc3164" | "raw";
  facility: number;
  /** 0 emerg … 3 err, 4 warning, 5 notice, 6 info, 7 debug. */
  severity: number;
  timestamp: string | null;
  host: string | null;
  /** Program (3164 TAG, 5424 APP-NAME). */
  app: string | null;
  pid: string | null;
  msgId: string | null;
  msg: string;
}

const MAX = 8192;
const clean = (s: string) => s.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, " ").replace(/\s+$/, "");
const nil = (s: string | undefined) => (s === undefined || s === "-" ? null : s);

export function parseSyslog(input: string | Buffer): SyslogMessage {
  let s = (typeof input === "string" ? input : input.toString("utf8")).slice(0, MAX);
  if (s.startsWith("\ufeff")) s = s.slice(1);
  const pri = /^<(\d{1,3})>/.exec(s);
  if (!pri || Number(pri[1]) > 191) return { format: "raw", facility: 1, severity: 5, timestamp: null, host: null, app: null, pid: null, msgId: null, msg: clean(s) };
  const p = Number(pri[1]);
  const base = { facility: p >> 3, severity: p & 7 };
  const rest = s.slice(pri[0].length);

  // RFC 5424: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]
  const v = /^1 (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(rest);
  if (v) {
    let after = rest.slice(v[0].length);
    if (after.startsWith("-")) after = after.slice(1);
    else if (after.startsWith("[")) {
      // structured data: [id k="v" ...]... with \] and \" escapes inside values
      let i = 0;
      while (after[i] === "[") {
        i++;
        let inQ = false;
        for (; i < after.length; i++) {
          const c = after[i];
          if (inQ && c === "\\") i++;
          else if (c === '"') inQ = !inQ;
          else if (c === "]" && !inQ) break;
        }
        i++;
      }
      after = after.slice(i);
    }
    if (after.startsWith(" ")) after = after.slice(1);
    if (after.startsWith("\ufeff")) after = after.slice(1);
    return { format: "rfc5424", ...base, timestamp: nil(v[1]), host: nil(v[2]), app: nil(v[3]), pid: nil(v[4]), msgId: nil(v[5]), msg: clean(after) };
  }

  // RFC 3164: TIMESTAMP "Mmm dd hh:mm:ss" (day space-padded), optional HOST, TAG[PID]: MSG
  const t = /^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) /.exec(rest);
  let body = t ? rest.slice(t[0].length) : rest;
  let host: string | null = null;
  // A host name is a first word followed by a tag with ':' or '['; d-i omits it ("netcfg[502]: ...").
  const hostThenTag = /^([A-Za-z0-9._-]+) (?=[A-Za-z0-9_./-]+(\[[^\]]*\])?: )/.exec(body);
  if (hostThenTag && !/^[A-Za-z0-9_./-]+(\[[^\]]*\])?: /.test(body)) {
    host = hostThenTag[1]!;
    body = body.slice(hostThenTag[0].length);
  }
  const tag = /^([A-Za-z0-9_./-]{1,48})(?:\[([^\]]{0,32})\])?: ?/.exec(body);
  return {
    format: "rfc3164",
    ...base,
    timestamp: t ? t[1]! : null,
    host,
    app: tag ? tag[1]! : null,
    pid: tag?.[2] ?? null,
    msgId: null,
    msg: clean(tag ? body.slice(tag[0].length) : body),
  };
}

/** One log pane line for a message: `app[pid]: msg` (priority word for warnings and worse). */
export function formatSyslogLine(m: SyslogMessage): string {
  const sev = m.severity <= 3 ? "error: " : m.severity === 4 ? "warning: " : "";
  const who = m.app ? `${m.app}${m.pid ? `[${m.pid}]` : ""}: ` : "";
  return `${who}${sev}${m.msg}`;
}
