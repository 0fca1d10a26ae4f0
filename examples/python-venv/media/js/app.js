/* mark the page as ready once the DOM is there */
function ready(f) { document.addEventListener("DOMContentLoaded", f); }
ready(function () { document.body.dataset.ready = "yes"; });
