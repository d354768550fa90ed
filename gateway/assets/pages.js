// Copy and print buttons. They are hidden in the page and shown only here,
// so without JavaScript (or without a clipboard) no button is there that
// does nothing; the key and the codes can still be selected, copied,
// printed from the browser's menu and downloaded.
(function () {
	document.querySelectorAll("button[data-copy]").forEach(function (b) {
		if (!navigator.clipboard) {
			return;
		}
		var label = b.textContent;
		b.hidden = false;
		b.addEventListener("click", function () {
			navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () {
				b.textContent = "Copied";
			}, function () {
				b.textContent = "Could not copy: select the key and copy it";
			});
			setTimeout(function () { b.textContent = label; }, 4000);
		});
	});
	document.querySelectorAll("button[data-print]").forEach(function (b) {
		b.hidden = false;
		b.addEventListener("click", function () { window.print(); });
	});
})();
