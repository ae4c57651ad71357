package documents

import (
	"github.com/corpintel/corpintel/api/web"
	"mime"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeFilename(t *testing.T) {
	cases := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\bob\report.docx`, "report.docx"},
		{"dir/", "document"},
		{"", "document"},
		{"...", "document"},
		{" .hidden ", "hidden"},
		{"trailing. . ", "trailing"},
		{"a\x00b\nc\td.txt", "a_b_c_d.txt"},
		{`what"is<this>|*?:.txt`, "what_is_this_____.txt"},
		{"100%;evil.txt", "100__evil.txt"},
		{"Ünïcödé 名前 🚀.pdf", "Ünïcödé 名前 🚀.pdf"},
		{"rtl\u202egnp.exe", "rtl_gnp.exe"},
		{"zero\u200bwidth", "zero_width"},
		{"bad\xffutf8.txt", "bad_utf8.txt"},
		{"NUL", "_NUL"},
		{"com1.txt", "_com1.txt"},
		{"console.txt", "console.txt"},
		{strings.Repeat("a", 300) + ".pdf", strings.Repeat("a", 251) + ".pdf"},
		{strings.Repeat("é", 200) + ".pdf", strings.Repeat("é", 125) + ".pdf"},
	}
	for _, c := range cases {
		if got := SanitizeFilename(c.in); got != c.want {
			t.Errorf("SanitizeFilename(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestContentDisposition(t *testing.T) {
	for _, name := range []string{"plain.pdf", "Übersicht 2026.pdf", "名前.txt", "a;b=c.txt", "quote_.txt"} {
		h := ContentDisposition(SanitizeFilename(name))
		typ, params, err := mime.ParseMediaType(h)
		if err != nil || typ != "attachment" {
			t.Fatalf("%q: %q does not parse: %v", name, h, err)
		}
		if params["filename"] != SanitizeFilename(name) {
			t.Errorf("%q: header %q gives %q", name, h, params["filename"])
		}
	}
}

func checkSafeName(t *testing.T, in, got string) {
	t.Helper()
	if got == "" || len(got) > maxFilenameBytes || !utf8.ValidString(got) {
		t.Fatalf("SanitizeFilename(%q) = %q: empty, too long or invalid UTF-8", in, got)
	}
	if strings.ContainsAny(got, "/\\\"\x00\r\n") || got == "." || got == ".." || strings.HasPrefix(got, ".") {
		t.Fatalf("SanitizeFilename(%q) = %q: unsafe", in, got)
	}
	if again := SanitizeFilename(got); again != got {
		t.Fatalf("not idempotent: %q -> %q -> %q", in, got, again)
	}
	h := ContentDisposition(got)
	if strings.ContainsAny(h, "\r\n\x00") {
		t.Fatalf("header %q", h)
	}
	if _, params, err := mime.ParseMediaType(h); err != nil || params["filename"] != got {
		t.Fatalf("header %q for %q parses to %q (%v)", h, got, params["filename"], err)
	}
}

func FuzzSanitizeFilename(f *testing.F) {
	for _, s := range []string{"report.pdf", "../../etc/passwd", `..\..\x`, "\u202e", "CON", "\xff\xfe", strings.Repeat("é", 200), " . "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkSafeName(t, in, SanitizeFilename(in))
	})
}

func FuzzParseListQuery(f *testing.F) {
	f.Add("limit=5")
	f.Add("cursor=" + ListCursor{ID: "11111111-2222-4333-8444-555555555555"}.String())
	f.Add("limit=-1&cursor=%%")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, errs := ParseListQuery(q)
		if len(errs) > 0 {
			return
		}
		if lq.Limit < 1 || lq.Limit > maxPage {
			t.Fatalf("limit %d", lq.Limit)
		}
		if lq.After != nil && !web.ValidUUID(lq.After.ID) {
			t.Fatalf("cursor id %q", lq.After.ID)
		}
	})
}
