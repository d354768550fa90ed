package gateway

import "strings"

// deviceName names the browser and system of a User-Agent in words, as
// the session list shows them ("Firefox on Linux", "Safari on iPhone").
// The raw string is never shown: it is long, means little to people and
// is whatever the client chose to send. Only the names below are
// recognised; anything else is "Unknown browser" or "an unknown system".
func deviceName(ua string) string {
	browser, system := browserName(ua), systemName(ua)
	switch {
	case browser == "" && system == "":
		return "Unknown device"
	case browser == "":
		return "Unknown browser on " + system
	case system == "":
		return browser
	}
	return browser + " on " + system
}

// browserName checks the tokens in an order that undoes the borrowing
// browsers do: Edge and Opera say Chrome, Chrome says Safari, and the
// iOS versions of Chrome and Firefox carry their own tokens.
func browserName(ua string) string {
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"Vivaldi/", "Vivaldi"}, {"SamsungBrowser/", "Samsung Internet"},
		{"YaBrowser/", "Yandex Browser"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chromium/", "Chromium"}, {"HeadlessChrome/", "Chrome"}, {"Chrome/", "Chrome"},
		{"Safari/", "Safari"},
		{"curl/", "curl"}, {"Wget/", "Wget"}, {"python-requests/", "Python requests"}, {"Go-http-client/", "Go client"},
	} {
		if strings.Contains(ua, b.token) {
			return b.name
		}
	}
	return ""
}

// systemName checks the more specific systems first: Android says Linux,
// iOS says "like Mac OS X".
func systemName(ua string) string {
	for _, s := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"iPod", "iPod"},
		{"Android", "Android"}, {"CrOS", "ChromeOS"},
		{"Windows", "Windows"}, {"Macintosh", "macOS"}, {"Mac OS X", "macOS"},
		{"Ubuntu", "Linux"}, {"Fedora", "Linux"}, {"Linux", "Linux"}, {"X11", "Linux"},
		{"FreeBSD", "FreeBSD"}, {"OpenBSD", "OpenBSD"},
	} {
		if strings.Contains(ua, s.token) {
			return s.name
		}
	}
	return ""
}
