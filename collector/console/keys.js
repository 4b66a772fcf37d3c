// The keyboard: / focuses the pattern, Esc clears it (or closes the detail), Space pauses and
// resumes a live tail, j/k move the selected row, Enter expands it, o opens its detail.
// Keys typed into a field stay the field's (but Esc).

export function installKeys(h) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    const t = e.target;
    const typing = t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
    if (e.key === "Escape") {
      if (document.querySelector("dialog[open]")) return; // the dialog closes itself
      h.escape(typing ? t : null);
      e.preventDefault();
      return;
    }
    if (typing || (t instanceof HTMLElement && t.tagName === "BUTTON" && (e.key === " " || e.key === "Enter"))) return;
    const action = {
      "/": h.focus,
      " ": h.pause,
      j: () => h.move(1),
      k: () => h.move(-1),
      Enter: h.expand,
      o: h.open,
    }[e.key];
    if (action) {
      action();
      e.preventDefault();
    }
  });
}
