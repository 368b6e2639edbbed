"use client";
import { useMutation } from "@tanstack/react-query";
import { useSearchParams } from "next/navigation";
import { useState, type FormEvent } from "react";
import { errorInfo, useTRPC } from "@/components/trpc";
import { ErrorBanner, Field } from "@/components/ui";

export function LoginForm() {
  const trpc = useTRPC();
  const params = useSearchParams();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const login = useMutation(trpc.auth.login.mutationOptions());

  async function submit(e: FormEvent) {
    e.preventDefault();
    await login.mutateAsync({ name, password });
    // Only same-site paths: never bounce to a URL given by a link.
    const next = params.get("next");
    window.location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
  }

  return (
    <form onSubmit={(e) => void submit(e).catch(() => {})} className="card space-y-4 p-6">
      <Field label="User name">
        <input className="input" autoComplete="username" autoFocus value={name} onChange={(e) => setName(e.target.value)} required />
      </Field>
      <Field label="Password">
        <input
          className="input"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          required
        />
      </Field>
      <ErrorBanner message={login.error ? errorInfo(login.error).message : null} />
      <button type="submit" className="btn btn-primary w-full justify-center" disabled={login.isPending}>
        {login.isPending ? "Signing in…" : "Sign in"}
      </button>
    </form>
  );
}
