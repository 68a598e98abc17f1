// Typesets the formulas of a page with the KaTeX files shipped beside this script (no network).
// pymdownx.arithmatex leaves each formula in an element of class "arithmatex", as \( ... \)
// inline or \[ ... \] on its own line.
function typesetFormulas() {
  for (const element of document.querySelectorAll(".arithmatex")) {
    const text = element.textContent.trim();
    const display = text.startsWith("\\[");
    katex.render(text.slice(2, -2), element, { displayMode: display, throwOnError: false });
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", typesetFormulas);
} else {
  typesetFormulas();
}
