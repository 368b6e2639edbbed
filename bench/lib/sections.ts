import fs from "node:fs";

const HEADER = `# Benchmarks

Each benchmark writes its own section (between its markers) and leaves the others alone. Figures are from the
machine each section names; rerun with the command it shows.
`;

/** Replace (or append) the section `name` of a Markdown report, keeping every other section as it is. */
export function writeSection(file: string, name: string, markdown: string): void {
  const start = `<!-- section:${name} -->`;
  const end = `<!-- /section:${name} -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : HEADER;
  const i = current.indexOf(start);
  const j = current.indexOf(end);
  const next = i >= 0 && j > i ? current.slice(0, i) + block + current.slice(j + end.length) : `${current.trimEnd()}\n\n${block}\n`;
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, next);
  fs.renameSync(tmp, file);
}
