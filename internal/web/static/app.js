// auditstream UI conveniences. Every page works without this script: it only adds copy
// buttons, event-type search, whole-category selection and auto-submitting selects.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-copy]");
    if (!b) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el) return;
    var text = "value" in el && el.tagName !== "PRE" ? el.value : el.textContent;
    var done = function () { var t = b.textContent; b.textContent = "Copied"; setTimeout(function () { b.textContent = t; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { select(el); });
    } else {
      select(el);
      try { document.execCommand("copy"); done(); } catch (err) { /* selected: the user copies */ }
    }
  });
  function select(el) {
    if (el.select) { el.select(); return; }
    var r = document.createRange(); r.selectNodeContents(el);
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
  }

  // Event-type search: hides the types (and empty categories) that do not match.
  var search = document.querySelector("[data-type-search]");
  if (search) {
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      document.querySelectorAll("fieldset.category").forEach(function (fs) {
        var cat = fs.getAttribute("data-category").toLowerCase();
        var any = false;
        fs.querySelectorAll(".type-item").forEach(function (it) {
          var show = q === "" || cat.indexOf(q) >= 0 || it.getAttribute("data-name").indexOf(q) >= 0;
          it.hidden = !show;
          any = any || show;
        });
        fs.hidden = !any;
      });
    });
  }

  // A whole category covers its types: check and lock them while it is selected.
  function syncWhole(box) {
    box.closest("fieldset.category").querySelectorAll(".type-item input").forEach(function (t) {
      if (box.checked) { t.dataset.was = t.checked ? "1" : ""; t.checked = true; t.disabled = true; }
      else if (t.disabled) { t.disabled = false; t.checked = t.dataset.was === "1"; }
    });
  }
  document.querySelectorAll("input[data-whole]").forEach(function (box) {
    if (box.checked) syncWhole(box);
    box.addEventListener("change", function () { syncWhole(box); });
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
  var res = document.getElementById("test-result");
  if (res) res.focus();
})();
