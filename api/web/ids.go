package web

// ValidUUID reports whether s is a UUID in canonical textual form (either case). IDs in
// paths and cursors are checked with it before they reach SQL, so a malformed one is a
// 404/422 rather than a database error.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
