// "Leave this page quickly": replace this page with an ordinary website, so that
// the Back button does not come back here. Without JavaScript the same link still
// leaves, as an ordinary link. Served by the service itself (no inline script).
(function () {
  "use strict";
  var link = document.getElementById("leave-now");
  if (!link) {
    return;
  }
  link.addEventListener("click", function (event) {
    event.preventDefault();
    window.location.replace(link.href);
  });
})();
