// The knowledge page's script (no inline scripts: CSP script-src 'self'). One thing: a file
// larger than the plan accepts is refused here, before the browser sends it (the server
// refuses it too, by its declared size, without reading it; a browser cut off mid-upload
// would show a connection error instead of the reason).
(function () {
  "use strict";
  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  onReady(function () {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var input = form.querySelector("input[type=file]");
    var note = document.getElementById("upload-too-large");
    var max = parseInt(form.dataset.maxBytes, 10) || 0;
    function tooLarge() {
      var file = input && input.files && input.files[0];
      return Boolean(max && file && file.size > max);
    }
    function check() {
      var refused = tooLarge();
      if (note) { note.textContent = refused ? form.dataset.tooLarge : ""; note.hidden = !refused; }
      return refused;
    }
    if (input) input.addEventListener("change", check);
    form.addEventListener("submit", function (event) { if (check()) event.preventDefault(); });
  });
})();
