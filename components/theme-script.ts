// Not a client module: app/layout.tsx (a server component) inlines THEME_SCRIPT into <head>.
export type ThemeChoice = "system" | "light" | "dark";
export const THEME_KEY = "rackhand.theme";
/** "collapsed" when the operator folded the sidebar away on a wide screen (components/app-shell.tsx). */
export const SIDEBAR_KEY = "rackhand.sidebar";

/**
 * Runs in <head> before the first paint (app/layout.tsx inlines it), so a dark page never flashes light: reads the
 * remembered choice, applies it, and while the choice is "system" follows prefers-color-scheme as it changes.
 * It also restores a collapsed sidebar (data-sidebar="collapsed" on <html>), for the same reason.
 * Kept as a plain string (no imports) because it runs before any bundle.
 */
export const THEME_SCRIPT = `(function(){try{
var k=${JSON.stringify(THEME_KEY)},m=window.matchMedia("(prefers-color-scheme: dark)");
function apply(){var c=null;try{c=localStorage.getItem(k)}catch(e){}
var d=c==="dark"||(c!=="light"&&m.matches);var r=document.documentElement;
r.classList.toggle("dark",d);r.dataset.theme=c==="dark"||c==="light"?c:"system";}
apply();window.__rackhandTheme=apply;
try{if(localStorage.getItem(${JSON.stringify(SIDEBAR_KEY)})==="collapsed")document.documentElement.dataset.sidebar="collapsed"}catch(e){}
if(m.addEventListener)m.addEventListener("change",apply);
window.addEventListener("storage",function(e){if(e.key===k)apply()});
}catch(e){}})();`;

