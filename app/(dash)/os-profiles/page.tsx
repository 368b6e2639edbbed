"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { IMAGE_FORMATS, INSTALL_TEMPLATES, NET_CONFIG_FORMATS, OS_FAMILIES, PROFILE_KINDS, PROFILE_KIND_LABELS, osProfileCreateSchema } from "@/lib/netboot";
import { useSession } from "@/components/session";
import { errorInfo, useTRPC } from "@/components/trpc";
import { useConfirm } from "@/components/dialog";
import { Dialog, ErrorBanner, Field, PageHeader } from "@/components/ui";

type Form = Record<"name" | "kind" | "osFamily" | "kernel" | "initrd" | "kernelArgs" | "imageUrl" | "imageSha256" | "imageFormat" | "template" | "mirror" | "username" | "sshKeys" | "packages" | "disk" | "netConfig" | "rootPartition" | "raidLevel" | "raidDevices" | "raidName" | "script" | "espMiB" | "swapMiB" | "rootMiB" | "initramfsDrivers", string>;
const EMPTY: Form = { name: "", kind: "installer", osFamily: "debian", kernel: "", initrd: "", kernelArgs: "", imageUrl: "", imageSha256: "", imageFormat: "", template: "preseed", mirror: "", username: "rackhand", sshKeys: "", packages: "", disk: "", netConfig: "", rootPartition: "", raidLevel: "", raidDevices: "", raidName: "root", script: "", espMiB: "512", swapMiB: "0", rootMiB: "", initramfsDrivers: "generic" };
const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);

function toInput(f: Form) {
  return {
    name: f.name,
    kind: f.kind,
    osFamily: f.osFamily || null,
    kernel: f.kernel || null,
    initrd: f.initrd || null,
    kernelArgs: f.kernelArgs || null,
    imageUrl: f.imageUrl || null,
    imageSha256: f.imageSha256 || null,
    imageFormat: f.imageFormat || null,
    template: f.template || null,
    options: { mirror: f.mirror || null, username: f.username || "rackhand", sshKeys: lines(f.sshKeys), packages: f.packages.split(/[\s,]+/).filter(Boolean), disk: f.disk || null, netConfig: f.netConfig || null, rootPartition: f.rootPartition || null, raid: f.raidLevel ? { level: Number(f.raidLevel), devices: f.raidDevices.split(/[\s,]+/).filter(Boolean), name: f.raidName || "root" } : null, postInstallScript: f.script.trim() ? { script: f.script } : null, installLayout: f.kind === "agent_install" ? { espMiB: Number(f.espMiB || 512), swapMiB: Number(f.swapMiB || 0), rootMiB: f.rootMiB.trim() ? Number(f.rootMiB) : null } : null, ...(f.kind === "agent_install" || (f.kind === "installer" && f.template === "preseed") ? { initramfsDrivers: f.initramfsDrivers === "targeted" ? "targeted" : "generic" } : {}) },
  };
}

export default function OsProfilesPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const ask = useConfirm();
  const { data: profiles, error } = useQuery(trpc.osProfiles.list.queryOptions());
  const [editing, setEditing] = useState<number | "new" | null>(null);
  const [form, setForm] = useState<Form>(EMPTY);
  const [submitted, setSubmitted] = useState(false);
  const done = () => (void qc.invalidateQueries({ queryKey: trpc.osProfiles.pathKey() }), setEditing(null));
  const create = useMutation(trpc.osProfiles.create.mutationOptions({ onSuccess: done }));
  const update = useMutation(trpc.osProfiles.update.mutationOptions({ onSuccess: done }));
  const remove = useMutation(trpc.osProfiles.delete.mutationOptions({ onSuccess: done }));
  const m = editing === "new" ? create : update;

  const parsed = osProfileCreateSchema.safeParse(toInput(form));
  const errors: Record<string, string> = {};
  // RAID fields sit under options.raid.*: "raid" + the field (raidDevices), so raid.name does not collide with name.
  const key = (path: PropertyKey[]) => {
    const i = path.indexOf("raid");
    if (i >= 0) return `raid${String(path[i + 1] ?? "devices").replace(/^./, (c) => c.toUpperCase())}`;
    return path.at(-1) === undefined ? "name" : String(path.at(-1));
  };
  if (!parsed.success) for (const i of parsed.error.issues) errors[key(i.path)] ??= i.message;
  for (const d of m.error ? errorInfo(m.error).details : []) if (d.field) errors[key(String(d.field).split("."))] ??= d.message;
  const err = (f: string) => (submitted ? errors[f] : undefined);
  const bind = (f: keyof Form) => ({ value: form[f], onChange: (e: { target: { value: string } }) => setForm({ ...form, [f]: e.target.value }) });

  function open(id: number | "new") {
    const p = id === "new" ? null : profiles?.find((x) => x.id === id);
    setForm(
      p
        ? { name: p.name, kind: p.kind, osFamily: p.osFamily ?? "", kernel: p.kernel ?? "", initrd: p.initrd ?? "", kernelArgs: p.kernelArgs ?? "", imageUrl: p.imageUrl ?? "", imageSha256: p.imageSha256 ?? "", imageFormat: p.imageFormat ?? "", template: p.template ?? "", mirror: p.options.mirror ?? "", username: p.options.username ?? "", sshKeys: (p.options.sshKeys ?? []).join("\n"), packages: (p.options.packages ?? []).join(" "), disk: p.options.disk ?? "", netConfig: p.options.netConfig ?? "", rootPartition: p.options.rootPartition ?? "", raidLevel: p.options.raid ? String(p.options.raid.level) : "", raidDevices: (p.options.raid?.devices ?? []).join(" "), raidName: p.options.raid?.name ?? "root", script: p.options.postInstallScript?.script ?? "", espMiB: String(p.options.installLayout?.espMiB ?? 512), swapMiB: String(p.options.installLayout?.swapMiB ?? 0), rootMiB: p.options.installLayout?.rootMiB ? String(p.options.installLayout.rootMiB) : "", initramfsDrivers: p.options.initramfsDrivers ?? "generic" }
        : EMPTY,
    );
    setSubmitted(false);
    create.reset();
    update.reset();
    setEditing(id);
  }
  function submit(e: FormEvent) {
    e.preventDefault();
    setSubmitted(true);
    if (!parsed.success) return;
    if (editing === "new") create.mutate(parsed.data);
    else if (editing) update.mutate({ id: editing, ...parsed.data });
  }
  const installer = form.kind === "installer";
  return (
    <div className="max-w-5xl">
      <PageHeader
        title="OS profiles"
        subtitle="What a machine is deployed with: an image the agent writes, or an installer with a rendered preseed, autoinstall or kickstart."
        actions={<button className="btn btn-primary" disabled={!can("operator")} onClick={() => open("new")}>New profile</button>}
      />
      <ErrorBanner message={error ? errorInfo(error).message : remove.error ? errorInfo(remove.error).message : null} />
      <div className="card overflow-hidden">
        <table className="w-full text-sm">
          <thead className="bg-slate-50 text-left text-xs uppercase text-slate-600">
            <tr><th className="px-3 py-2">Name</th><th className="px-3 py-2">Kind</th><th className="px-3 py-2">Boots</th><th className="px-3 py-2">Template</th><th className="px-3 py-2">Machines</th><th /></tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {profiles?.map((p) => (
              <tr key={p.id}>
                <td className="px-3 py-1.5 font-medium">{p.name}</td>
                <td className="px-3 py-1.5">{PROFILE_KIND_LABELS[p.kind]}{p.osFamily ? ` · ${p.osFamily}` : ""}</td>
                <td className="px-3 py-1.5 font-mono text-xs">{p.kind === "image" ? p.imageUrl : p.kind === "agent_install" ? `debootstrap ${p.options.suite ?? "bookworm"}` : p.kernel}</td>
                <td className="px-3 py-1.5">{p.template ?? "—"}</td>
                <td className="px-3 py-1.5">{p.machineCount}</td>
                <td className="px-3 py-1.5 text-right">
                  <button className="btn btn-sm" disabled={!can("operator")} onClick={() => open(p.id)}>Edit {p.name}</button>{" "}
                  <button className="btn btn-sm" disabled={!can("operator")} onClick={() => void ask({ title: `Delete ${p.name}?`, message: "This cannot be undone.", confirmLabel: "Delete", danger: true }).then((ok) => ok !== null && remove.mutate({ id: p.id }))}>Delete</button>
                </td>
              </tr>
            ))}
            {profiles?.length === 0 && <tr><td colSpan={6} className="px-3 py-6 text-center text-slate-500">No OS profiles yet.</td></tr>}
          </tbody>
        </table>
      </div>
      <Dialog open={editing !== null} onClose={() => setEditing(null)} title={editing === "new" ? "New OS profile" : "Edit OS profile"} wide>
        <form onSubmit={submit} noValidate className="grid grid-cols-1 gap-3 md:grid-cols-3" aria-label="OS profile">
          <Field label="Profile name" error={err("name")}><input className="input" {...bind("name")} /></Field>
          <Field label="Kind"><select className="input" {...bind("kind")}>{PROFILE_KINDS.map((k) => <option key={k} value={k}>{PROFILE_KIND_LABELS[k]}</option>)}</select></Field>
          <Field label="OS family"><select className="input" {...bind("osFamily")}><option value="">—</option>{OS_FAMILIES.map((k) => <option key={k}>{k}</option>)}</select></Field>
          {installer ? (
            <>
              <Field label="Kernel" error={err("kernel")} hint="Path below <dataDir>/http, e.g. debian/12/linux"><input className="input font-mono" {...bind("kernel")} /></Field>
              <Field label="Initrd" error={err("initrd")}><input className="input font-mono" {...bind("initrd")} /></Field>
              <Field label="Template" error={err("template")}><select className="input" {...bind("template")}><option value="">—</option>{INSTALL_TEMPLATES.map((k) => <option key={k}>{k}</option>)}</select></Field>
              {form.template === "preseed" && <Field label="Initramfs drivers" error={err("initramfsDrivers")} hint="The installer's driver policy for the installed system's initramfs"><select className="input" {...bind("initramfsDrivers")}><option value="generic">Generic (all, Debian's default)</option><option value="targeted">Targeted (this machine)</option></select></Field>}
            </>
          ) : form.kind === "agent_install" ? (
            <>
              <Field label="EFI system partition (MiB)" error={err("espMiB")} hint="UEFI machines; BIOS ones get a 1 MiB BIOS boot partition"><input className="input font-mono" inputMode="numeric" {...bind("espMiB")} /></Field>
              <Field label="Swap (MiB)" error={err("swapMiB")} hint="0 = no swap partition"><input className="input font-mono" inputMode="numeric" {...bind("swapMiB")} /></Field>
              <Field label="Root (MiB)" error={err("rootMiB")} hint="Empty = the rest of the disk (at least 2048)"><input className="input font-mono" inputMode="numeric" {...bind("rootMiB")} /></Field>
              <Field label="Initramfs drivers" error={err("initramfsDrivers")} hint="Generic boots on other hardware too; targeted holds this machine's drivers only and builds faster"><select className="input" {...bind("initramfsDrivers")}><option value="generic">Generic (all, Debian's default)</option><option value="targeted">Targeted (this machine)</option></select></Field>
            </>
          ) : (
            <>
              <Field label="Image URL" error={err("imageUrl")}><input className="input font-mono" {...bind("imageUrl")} /></Field>
              <Field label="Image sha256" error={err("imageSha256")}><input className="input font-mono" {...bind("imageSha256")} /></Field>
              <Field label="Image format" error={err("imageFormat")}><select className="input" {...bind("imageFormat")}><option value="">—</option>{IMAGE_FORMATS.map((k) => <option key={k}>{k}</option>)}</select></Field>
            </>
          )}
          <div className="md:col-span-3"><Field label="Kernel arguments" error={err("kernelArgs")}><input className="input font-mono" {...bind("kernelArgs")} /></Field></div>
          <Field label="Mirror" error={err("mirror")}><input className="input font-mono" {...bind("mirror")} /></Field>
          <Field label="User" error={err("username")}><input className="input" {...bind("username")} /></Field>
          <Field label="Install disk" error={err("disk")} hint="e.g. /dev/sda; empty = first disk"><input className="input font-mono" {...bind("disk")} /></Field>
          <Field label="Packages" error={err("packages")}><input className="input font-mono" {...bind("packages")} /></Field>
          <Field label="NIC config format"><select className="input" {...bind("netConfig")}><option value="">—</option>{NET_CONFIG_FORMATS.map((k) => <option key={k}>{k}</option>)}</select></Field>
          <Field label="Image root partition" error={err("rootPartition")} hint="Image deploys: where the network config is written, e.g. /dev/sda2 or LABEL=root"><input className="input font-mono" {...bind("rootPartition")} /></Field>
          <Field label="Software RAID" error={err("raidLevel")} hint="Image deploys: write the image onto an md array"><select className="input" {...bind("raidLevel")}><option value="">None</option><option value="1">RAID 1</option><option value="10">RAID 10</option><option value="0">RAID 0</option></select></Field>
          <Field label="RAID disks" error={err("raidDevices")} hint="e.g. /dev/sda /dev/sdb"><input className="input font-mono" {...bind("raidDevices")} /></Field>
          <Field label="RAID array name" error={err("raidName")} hint="/dev/md/<name>"><input className="input font-mono" {...bind("raidName")} /></Field>
          <div className="md:col-span-3"><Field label="Post-install script" error={err("script")} hint="Image deploys: run by /bin/sh in the agent's RAM disk after the image is written (600 s limit). Readable by every user: no secrets"><textarea className="input font-mono" rows={3} {...bind("script")} /></Field></div>
          <div className="md:col-span-3"><Field label="SSH keys" error={err("sshKeys")} hint="One OpenSSH public key per line"><textarea className="input font-mono" rows={2} {...bind("sshKeys")} /></Field></div>
          <div className="md:col-span-3 flex items-center gap-3">
            <button type="submit" className="btn btn-primary" disabled={m.isPending}>Save profile</button>
            <ErrorBanner message={m.error ? errorInfo(m.error).message : null} />
          </div>
        </form>
      </Dialog>
    </div>
  );
}
