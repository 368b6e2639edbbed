"use client";
import { useEffect, useState } from "react";

import { THEME_KEY, type ThemeChoice } from "./theme-script";

function stored(): ThemeChoice {
  try {
    const v = localStorage.getItem(THEME_KEY);
    return v === "light" || v === "dark" ? v : "system";
  } catch {
    return "system";
  }
}

/** System / Light / Dark, remembered in localStorage (per browser), applied at once. */
export function ThemeToggle({ className = "" }: { className?: string }) {
  const [choice, setChoice] = useState<ThemeChoice>("system");
  // The server cannot know the stored choice; read it after mounting (the page already wears it, see THEME_SCRIPT).
  // eslint-disable-next-line react-hooks/set-state-in-effect -- one read of localStorage on mount, not a render loop
  useEffect(() => setChoice(stored()), []);
  const change = (c: ThemeChoice) => {
    setChoice(c);
    try {
      if (c === "system") localStorage.removeItem(THEME_KEY);
      else localStorage.setItem(THEME_KEY, c);
    } catch {
      // Storage refused (private mode): the choice holds for this page only.
    }
    const apply = (window as { __rackhandTheme?: () => void }).__rackhandTheme;
    if (apply) apply();
    else document.documentElement.classList.toggle("dark", c === "dark" || (c === "system" && matchMedia("(prefers-color-scheme: dark)").matches));
  };
  return (
    <label className={`flex items-center gap-2 ${className}`}>
      <span>Theme</span>
      <select
        className="rounded border border-(--shell-border) bg-(--shell-bg) px-1 py-0.5 text-xs text-(--shell-text)"
        value={choice}
        onChange={(e) => change(e.target.value as ThemeChoice)}
      >
        <option value="system">System</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}
