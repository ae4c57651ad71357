package documents

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxFilenameBytes bounds stored file names (most file systems allow 255 bytes).
const maxFilenameBytes = 255

// fallbackFilename names uploads whose name sanitizes to nothing.
const fallbackFilename = "document"

// windowsReserved are device names Windows refuses as file names, with any extension.
var windowsReserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
}

// SanitizeFilename turns a client-supplied file name into one that is safe to store and
// to hand back in a Content-Disposition header on any client OS: only the last path
// element (either separator) is kept, control, format and reserved characters become
// '_', invalid UTF-8 is replaced, leading dots and trailing dots and spaces go (no hidden
// files, no "..", no Windows-stripped names), Windows device names are defused, and the
// result is at most 255 bytes, cut on a rune boundary with the extension kept. Unicode
// letters are kept as they are. An empty result becomes "document".
func SanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for i, r := range name {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(name[i:]); size <= 1 {
				b.WriteByte('_')
				continue
			}
		}
		switch {
		case r < 0x20 || r == 0x7f || unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) ||
			unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) || unicode.Is(unicode.Co, r) ||
			r == 0xfffd || r == 0xfeff:
			b.WriteByte('_')
		case strings.ContainsRune(`"*:<>?|%;`, r):
			b.WriteByte('_')
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimLeft(strings.TrimSpace(b.String()), ". ")
	name = strings.TrimRight(name, ". ")
	if name == "" {
		return fallbackFilename
	}
	base, _, _ := strings.Cut(name, ".")
	if windowsReserved[strings.ToUpper(strings.TrimSpace(base))] {
		name = "_" + name
	}
	if len(name) > maxFilenameBytes {
		name = truncateKeepingExt(name, maxFilenameBytes)
	}
	return name
}

// truncateKeepingExt cuts name to max bytes on a rune boundary, keeping a short
// extension.
func truncateKeepingExt(name string, max int) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
		ext = name[i:]
		name = name[:i]
	}
	limit := max - len(ext)
	for len(name) > limit {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.TrimRight(name, ". ")
	if name == "" {
		name = fallbackFilename
	}
	return name + ext
}

// ContentDisposition renders an attachment header for a sanitized file name: an ASCII
// fallback in filename= and the exact UTF-8 name in filename*= (RFC 6266 / RFC 8187).
func ContentDisposition(name string) string {
	var ascii strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r >= 0x7f || r == '"' || r == '\\':
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(r)
		}
	}
	h := `attachment; filename="` + ascii.String() + `"`
	if ascii.String() != name {
		h += "; filename*=UTF-8''" + pctEncode(name)
	}
	return h
}

// pctEncode percent-encodes everything outside RFC 8187's attr-char set.
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
