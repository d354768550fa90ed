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
// Passkeys. Their parts of a page are hidden there and shown only here,
// where WebAuthn runs in a secure context; elsewhere the code forms do
// everything. A form marked data-passkey carries its ceremony's options
// (WebAuthn JSON) in the page, so the browser is asked in the click's own
// task, with nothing awaited first (Safari requires that), and the answer
// is posted with the form as a hidden field.
(function () {
	if (!window.PublicKeyCredential || !window.isSecureContext || !navigator.credentials) {
		return;
	}
	document.querySelectorAll(".passkey[hidden]").forEach(function (el) { el.hidden = false; });
	function bytes(s) {
		s = s.replace(/-/g, "+").replace(/_/g, "/");
		var bin = atob(s + "===".slice((s.length + 3) % 4));
		var out = new Uint8Array(bin.length);
		for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
		return out.buffer;
	}
	function b64(buf) {
		var s = "", a = new Uint8Array(buf);
		for (var i = 0; i < a.length; i++) { s += String.fromCharCode(a[i]); }
		return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
	}
	function ids(list) {
		(list || []).forEach(function (c) { c.id = bytes(c.id); });
	}
	function parse(kind, o) {
		var P = window.PublicKeyCredential;
		if (kind === "create" && P.parseCreationOptionsFromJSON) { return P.parseCreationOptionsFromJSON(o); }
		if (kind === "get" && P.parseRequestOptionsFromJSON) { return P.parseRequestOptionsFromJSON(o); }
		o.challenge = bytes(o.challenge);
		if (o.user) { o.user.id = bytes(o.user.id); }
		ids(o.excludeCredentials);
		ids(o.allowCredentials);
		return o;
	}
	function toJSON(c) {
		if (c.toJSON) { return c.toJSON(); }
		var r = c.response, out = {id: c.id, rawId: b64(c.rawId), type: c.type, response: {clientDataJSON: b64(r.clientDataJSON)},
			clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {}};
		if (r.attestationObject) {
			out.response.attestationObject = b64(r.attestationObject);
			out.response.transports = r.getTransports ? r.getTransports() : [];
		} else {
			out.response.authenticatorData = b64(r.authenticatorData);
			out.response.signature = b64(r.signature);
			if (r.userHandle) { out.response.userHandle = b64(r.userHandle); }
		}
		return out;
	}
	function words(err) {
		switch (err && err.name) {
		case "NotAllowedError": return "The passkey request was cancelled or timed out. Try again, or use a code.";
		case "InvalidStateError": return "This passkey is registered here already.";
		case "SecurityError": return "This passkey belongs to another site.";
		case "NotSupportedError": return "This device has no passkey that works here. Use a code instead.";
		}
		return "The passkey did not work. Try again, or use a code.";
	}
	document.querySelectorAll("form[data-passkey]").forEach(function (form) {
		var kind = form.getAttribute("data-passkey");
		var shown = form.querySelector("[data-passkey-error]");
		form.addEventListener("submit", function (ev) {
			ev.preventDefault();
			var options;
			try {
				var o = JSON.parse(form.getAttribute("data-options"));
				options = parse(kind, o.publicKey || o);
			} catch (e) {
				if (shown) { shown.textContent = words(e); shown.hidden = false; }
				return;
			}
			var ask = kind === "create" ? navigator.credentials.create({publicKey: options}) : navigator.credentials.get({publicKey: options});
			ask.then(function (cred) {
				form.querySelector("input[name=credential]").value = JSON.stringify(toJSON(cred));
				form.submit();
			}, function (e) {
				if (shown) { shown.textContent = words(e); shown.hidden = false; }
			});
		});
	});
})();
