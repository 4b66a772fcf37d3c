// Loaded as a classic script in <head>, before the first paint: the theme chosen with the
// toggle (kept in localStorage) wins over the system's; without one, CSS follows
// prefers-color-scheme. No inline script: the Content-Security-Policy forbids it.
(function () {
  try {
    var t = localStorage.getItem("wharf.theme");
    if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  } catch (e) {
    // storage disabled: follow the system
  }
})();
