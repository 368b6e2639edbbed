"use client";
import { createContext, useCallback, useContext, useEffect, useId, useRef, useState, type KeyboardEvent, type ReactNode } from "react";

/** What can take focus inside a dialog, in document order (visible, enabled, not taken out of the tab order). */
const FOCUSABLE =
  'a[href], area[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), iframe, [contenteditable="true"], [tabindex]:not([tabindex="-1"])';

export function focusableIn(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)].filter(
    (el) => el.tabIndex >= 0 && !el.closest("[inert]") && el.getClientRects().length > 0,
  );
}

/**
 * A modal dialog on the native <dialog> element, opened with showModal(): the page behind is inert, Escape
 * closes it (the `cancel` event), and it is labelled by its heading. On top of what the browser gives:
 *   - focus moves in: to the element marked `data-autofocus`, else the first focusable one after the close button;
 *   - Tab and Shift+Tab cycle inside (the browser alone would let Tab leave the page for its own toolbar);
 *   - when it closes, focus goes back to the element that had it when it opened (the button that opened it).
 * The content is only mounted while open, so each opening starts from a fresh form.
 */
export function Dialog({
  open,
  onClose,
  title,
  children,
  wide = false,
  description,
}: {
  open: boolean;
  onClose: () => void;
  title: string;
  children: ReactNode;
  wide?: boolean;
  /** Id of an element inside that describes the dialog (aria-describedby). */
  description?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<HTMLElement | null>(null);
  const titleId = useId();

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement instanceof HTMLElement ? document.activeElement : null;
      d.showModal();
      const first = d.querySelector<HTMLElement>("[data-autofocus]") ?? focusableIn(d).find((el) => !el.hasAttribute("data-dialog-close")) ?? focusableIn(d)[0];
      first?.focus();
    }
    if (!open && d.open) d.close();
    if (!open && opener.current) {
      const back = opener.current;
      opener.current = null;
      // The opener may have gone (a deleted row's button); then the browser's default (body) is all there is.
      if (back.isConnected) back.focus();
    }
  }, [open]);

  const trapTab = (e: KeyboardEvent<HTMLDialogElement>) => {
    if (e.key !== "Tab" || !ref.current) return;
    const items = focusableIn(ref.current);
    if (items.length === 0) {
      e.preventDefault();
      return;
    }
    const first = items[0]!;
    const last = items[items.length - 1]!;
    const active = document.activeElement;
    const inside = active instanceof Node && ref.current.contains(active) && active !== ref.current;
    if (e.shiftKey && (!inside || active === first)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (!inside || active === last)) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <dialog
      ref={ref}
      onClose={onClose}
      onKeyDown={trapTab}
      aria-modal="true"
      aria-labelledby={titleId}
      aria-describedby={description}
      className={`m-auto max-h-[90vh] rounded-lg bg-white p-0 text-slate-900 shadow-xl backdrop:bg-slate-900/40 ${wide ? "w-[min(960px,95vw)]" : "w-[min(480px,95vw)]"}`}
    >
      {open && (
        <div className="p-5">
          <div className="mb-4 flex items-start justify-between gap-3">
            <h2 id={titleId} className="text-base font-semibold">
              {title}
            </h2>
            <button type="button" data-dialog-close className="rounded px-1 text-slate-600 hover:text-slate-900" onClick={onClose} aria-label="Close">
              ✕
            </button>
          </div>
          {children}
        </div>
      )}
    </dialog>
  );
}

export interface ConfirmOptions {
  title: string;
  /** The question in a sentence or two: what happens, to what. */
  message: ReactNode;
  /** The confirming button's text ("Delete"), never a bare "OK". */
  confirmLabel: string;
  /** Red confirming button, for what cannot be undone. */
  danger?: boolean;
  /** An optional one-line text answer (a reason); its value is what `ask` resolves to. */
  input?: { label: string; placeholder?: string; maxLength?: number };
}

/**
 * A confirmation in a Dialog: the message, Cancel (focused first, the safe default) and the confirming button;
 * with `input`, a labelled text field (focused first) whose value is handed to onConfirm.
 */
export function ConfirmDialog({
  open,
  options,
  onConfirm,
  onCancel,
}: {
  open: boolean;
  options: ConfirmOptions | null;
  onConfirm: (value: string) => void;
  onCancel: () => void;
}) {
  const messageId = useId();
  return (
    <Dialog open={open && !!options} onClose={onCancel} title={options?.title ?? ""} description={messageId}>
      {options && <ConfirmForm options={options} messageId={messageId} onConfirm={onConfirm} onCancel={onCancel} />}
    </Dialog>
  );
}

/** Mounted per opening (Dialog mounts its content only while open), so the text field starts empty each time. */
function ConfirmForm({
  options,
  messageId,
  onConfirm,
  onCancel,
}: {
  options: ConfirmOptions;
  messageId: string;
  onConfirm: (value: string) => void;
  onCancel: () => void;
}) {
  const [value, setValue] = useState("");
  const inputId = useId();
  return (
    <form
      className="space-y-3"
      onSubmit={(e) => {
        e.preventDefault();
        onConfirm(value.trim());
      }}
    >
      <div id={messageId} className="text-sm">
        {options.message}
      </div>
      {options.input && (
        <div>
          <label htmlFor={inputId} className="label">
            {options.input.label}
          </label>
          <input
            id={inputId}
            className="input"
            data-autofocus
            value={value}
            placeholder={options.input.placeholder}
            maxLength={options.input.maxLength}
            onChange={(e) => setValue(e.target.value)}
          />
        </div>
      )}
      <div className="flex justify-end gap-2">
        <button type="button" className="btn" onClick={onCancel} data-autofocus={options.input ? undefined : true}>
          Cancel
        </button>
        <button type="submit" className={`btn ${options.danger ? "btn-danger" : "btn-primary"}`}>
          {options.confirmLabel}
        </button>
      </div>
    </form>
  );
}

type Ask = (options: ConfirmOptions) => Promise<string | null>;
const ConfirmContext = createContext<Ask | null>(null);

/**
 * One ConfirmDialog for the whole dashboard, in place of window.confirm/prompt: `const ask = useConfirm();`
 * then `if ((await ask({...})) !== null) …`. Resolves to the typed text ("" without `input`), or null on
 * Cancel, Escape or the close button.
 */
export function ConfirmProvider({ children }: { children: ReactNode }) {
  const [pending, setPending] = useState<{ options: ConfirmOptions; resolve: (v: string | null) => void } | null>(null);
  const ask = useCallback<Ask>(
    (options) =>
      new Promise((resolve) => {
        setPending((prev) => {
          prev?.resolve(null);
          return { options, resolve };
        });
      }),
    [],
  );
  const settle = (v: string | null) => {
    pending?.resolve(v);
    setPending(null);
  };
  return (
    <ConfirmContext.Provider value={ask}>
      {children}
      <ConfirmDialog open={!!pending} options={pending?.options ?? null} onConfirm={(v) => settle(v)} onCancel={() => settle(null)} />
    </ConfirmContext.Provider>
  );
}

export function useConfirm(): Ask {
  const ask = useContext(ConfirmContext);
  if (!ask) throw new Error("useConfirm needs a <ConfirmProvider> (the dashboard's AppShell has one)");
  return ask;
}
