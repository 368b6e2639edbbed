"use client";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { plural } from "@/lib/format";
import { CSV_COLUMNS } from "@/lib/schemas";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner } from "./ui";

const EXAMPLE = `name,rack,u_position,mac,ip,bmc_address,bmc_user,bmc_password
node-101,dc1-r01,40,52:54:00:10:01:01,10.42.9.101,10.43.9.101,admin,secret`;

/**
 * CSV import in two steps: Preview (a dry run on the server: every row checked against the database, nothing
 * written) shows the rows and every error by row and column; Import writes all rows or none.
 */
export function CsvImport({ onDone }: { onDone: () => void }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const [csv, setCsv] = useState("");
  const preview = useMutation(trpc.machines.importCsv.mutationOptions());
  const commit = useMutation(
    trpc.machines.importCsv.mutationOptions({
      onSuccess: () => {
        void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
        void qc.invalidateQueries({ queryKey: trpc.racks.pathKey() });
      },
    }),
  );
  const p = preview.data;
  const changed = (text: string) => {
    setCsv(text);
    preview.reset();
    commit.reset();
  };

  if (commit.data) {
    return (
      <div className="space-y-3">
        <p className="text-sm text-emerald-800" role="status">
          Imported {plural(commit.data.imported, "machine")}.
        </p>
        <div className="flex justify-end">
          <button className="btn btn-primary" onClick={onDone}>
            Done
          </button>
        </div>
      </div>
    );
  }
  return (
    <div className="space-y-3">
      <p className="text-sm text-slate-600">
        Columns: <code className="text-xs">{CSV_COLUMNS.join(", ")}</code>. <code>name</code> and <code>mac</code> are required; the
        import is all-or-nothing.
      </p>
      <div className="flex items-center gap-2">
        <input
          type="file"
          accept=".csv,text/csv"
          aria-label="CSV file"
          className="text-sm"
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void f.text().then(changed);
          }}
        />
        <button type="button" className="text-xs text-blue-700 hover:underline" onClick={() => changed(EXAMPLE)}>
          Insert example
        </button>
      </div>
      <textarea
        className="input h-40 font-mono text-xs"
        aria-label="CSV text"
        placeholder={EXAMPLE}
        value={csv}
        onChange={(e) => changed(e.target.value)}
      />
      <ErrorBanner message={preview.error ? errorInfo(preview.error).message : commit.error ? errorInfo(commit.error).message : null} />
      {p && !p.ok && (
        <div role="alert" className="rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-800">
          <p className="font-semibold">
            {plural(p.errors.length, "problem")} in {plural(new Set(p.errors.map((e) => e.row)).size, "row")} — nothing will be imported until they are fixed:
          </p>
          <ul className="mt-1 max-h-40 list-disc overflow-auto pl-5" data-testid="csv-errors">
            {p.errors.map((e, i) => (
              <li key={i}>
                {e.row ? `Row ${e.row}` : "File"}
                {e.field ? `, ${e.field}` : ""}: {e.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {p && p.rows.length > 0 && (
        <div className="max-h-56 overflow-auto rounded border border-slate-200">
          <table className="w-full text-xs" aria-label="CSV preview">
            <thead className="sticky top-0 bg-slate-50 text-left">
              <tr>
                {["Row", "Name", "Rack", "U", "MAC", "IP", "BMC", "OS profile"].map((h) => (
                  <th key={h} className="px-2 py-1">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {p.rows.map((r) => (
                <tr key={r.row} className={p.errors.some((e) => e.row === r.row) ? "bg-red-50" : ""}>
                  <td className="px-2 py-0.5">{r.row}</td>
                  <td className="px-2 py-0.5">{r.name}</td>
                  <td className="px-2 py-0.5">{r.rack ?? "—"}</td>
                  <td className="px-2 py-0.5">{r.uPosition ?? "—"}</td>
                  <td className="px-2 py-0.5 font-mono">{r.mac}</td>
                  <td className="px-2 py-0.5 font-mono">{r.ip ?? "—"}</td>
                  <td className="px-2 py-0.5 font-mono">{r.bmcAddress ?? "—"}</td>
                  <td className="px-2 py-0.5">{r.osProfile ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="flex justify-end gap-2">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="button" className="btn" disabled={!csv.trim() || preview.isPending} onClick={() => preview.mutate({ csv, dryRun: true })}>
          Preview
        </button>
        <button
          type="button"
          className="btn btn-primary"
          disabled={!p?.ok || commit.isPending}
          onClick={() => commit.mutate({ csv, dryRun: false })}
        >
          Import {p?.ok ? plural(p.rows.length, "machine") : ""}
        </button>
      </div>
    </div>
  );
}
