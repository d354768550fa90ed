package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxBody bounds every request body the gateway reads.
const maxBody = 16 << 10

// wantsJSON reports whether application/json is the client's preferred
// answer type: the highest-q media range, the first one on ties.
func wantsJSON(r *http.Request) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == "application/json"
}

// acceptsHTML reports whether the client is a browser for the gate: one
// that asks for HTML gets a redirect to the login page, anything else 401.
func acceptsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// form is a decoded request body: a URL-encoded form or a JSON object of
// strings. JSON marks which it was, since only forms carry a CSRF token.
type form struct {
	values map[string]string
	JSON   bool
}

func (f form) get(key string) string { return f.values[key] }

// requestError is a client mistake with the status and API error to answer.
type requestError struct {
	status int
	code   errorCode
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// readForm decodes a POST body. Anything but a form or a JSON object of
// strings is refused, and nothing is read past maxBody.
func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return form{}, &requestError{http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", maxBody)}
		}
		return form{}, &requestError{http.StatusBadRequest, codeBadRequest, "could not read the request body"}
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return form{}, &requestError{http.StatusBadRequest, codeBadRequest, "malformed form body"}
		}
		f := form{values: make(map[string]string, len(vals))}
		for k, v := range vals {
			if len(v) != 1 {
				return form{}, &requestError{http.StatusBadRequest, codeBadRequest, fmt.Sprintf("field %q given more than once", k)}
			}
			f.values[k] = v[0]
		}
		return f, nil
	case "application/json":
		f := form{values: map[string]string{}, JSON: true}
		if len(strings.TrimSpace(string(raw))) == 0 {
			return f, nil
		}
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			return form{}, &requestError{http.StatusBadRequest, codeBadRequest, "body must be a JSON object of string fields"}
		}
		for k, v := range fields {
			switch v := v.(type) {
			case string:
				f.values[k] = v
			case nil:
			case bool:
				// A yes-or-no field, such as remember.
				f.values[k] = strconv.FormatBool(v)
			case map[string]any:
				// A passkey's answer is the WebAuthn JSON object itself.
				if k != "credential" {
					return form{}, &requestError{http.StatusBadRequest, codeBadRequest, "body must be a JSON object of string fields"}
				}
				b, err := json.Marshal(v)
				if err != nil {
					return form{}, &requestError{http.StatusBadRequest, codeBadRequest, "malformed credential"}
				}
				f.values[k] = string(b)
			default:
				return form{}, &requestError{http.StatusBadRequest, codeBadRequest, fmt.Sprintf("field %q must be a string or true/false", k)}
			}
		}
		return f, nil
	}
	return form{}, &requestError{http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "send application/x-www-form-urlencoded or application/json"}
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, code errorCode) {
	writeJSON(w, status, map[string]errorCode{"error": code})
}
