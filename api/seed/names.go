package seed

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode"
)

var (
	namePrefixes = []string{
		"Acme", "Apex", "Atlas", "Aurora", "Beacon", "Blue Ridge", "Boreal", "Cascade", "Cedar", "Crescent",
		"Delta", "Evergreen", "Falcon", "Frontier", "Galaxy", "Granite", "Harbor", "Horizon", "Ironwood", "Juniper",
		"Keystone", "Lakeshore", "Lumen", "Meridian", "Monarch", "Nimbus", "Northwind", "Oakridge", "Orion", "Pacific",
		"Pinnacle", "Polaris", "Quantum", "Redwood", "Riverbend", "Sapphire", "Sentinel", "Sierra", "Silverline", "Solstice",
		"Summit", "Terra", "Titan", "Trident", "Vanguard", "Vertex", "Westbrook", "Zenith", "Zürich", "Nordlys",
		"Ålesund", "Société Lumière", "Kraków", "São Paulo", "Île-de-France", "Müller", "Straße", "Nakamura", "Hanseatic", "Bergström",
	}
	nameCores = []string{
		"Analytics", "Biotech", "Capital", "Chemicals", "Dynamics", "Energy", "Foods", "Genomics", "Health", "Industries",
		"Instruments", "Labs", "Logistics", "Materials", "Media", "Mining", "Networks", "Pharma", "Power", "Robotics",
		"Semiconductors", "Software", "Solar", "Systems", "Telecom", "Therapeutics", "Transport", "Water", "Aerospace", "Retail",
	}
	legalForms = []string{"Inc.", "Corp.", "Holdings", "Group", "plc", "AG", "SE", "S.A.", "GmbH", "Ltd.", "N.V.", "AB", "K.K.", "ASA"}
)

type sector struct {
	name       string
	industries []string
}

// sectors are the GICS sectors with a few industries each.
var sectors = []sector{
	{"Information Technology", []string{"Software", "Semiconductors", "IT Services", "Hardware"}},
	{"Health Care", []string{"Pharmaceuticals", "Biotechnology", "Medical Devices", "Health Care Providers"}},
	{"Financials", []string{"Banks", "Insurance", "Capital Markets", "Consumer Finance"}},
	{"Consumer Discretionary", []string{"Automobiles", "Retail", "Hotels & Leisure", "Apparel"}},
	{"Communication Services", []string{"Telecommunications", "Media", "Interactive Media", "Entertainment"}},
	{"Industrials", []string{"Aerospace & Defense", "Machinery", "Logistics", "Construction"}},
	{"Consumer Staples", []string{"Food Products", "Beverages", "Household Products", "Food Retail"}},
	{"Energy", []string{"Oil & Gas", "Renewable Energy", "Energy Equipment"}},
	{"Utilities", []string{"Electric Utilities", "Water Utilities", "Gas Utilities"}},
	{"Real Estate", []string{"REITs", "Real Estate Development"}},
	{"Materials", []string{"Chemicals", "Metals & Mining", "Construction Materials", "Paper & Packaging"}},
}

// countries, weighted roughly by listed companies.
var countries = []struct {
	code   string
	weight int
}{
	{"US", 30}, {"GB", 8}, {"DE", 7}, {"JP", 8}, {"FR", 5}, {"CA", 5}, {"CH", 4}, {"NL", 3}, {"SE", 3}, {"IN", 5},
	{"CN", 6}, {"KR", 3}, {"AU", 3}, {"BR", 2}, {"SG", 2}, {"IE", 1}, {"ES", 2}, {"IT", 2}, {"NO", 1}, {"PL", 1},
}

var countryNames = map[string]string{
	"US": "the United States", "GB": "the United Kingdom", "DE": "Germany", "JP": "Japan", "FR": "France",
	"CA": "Canada", "CH": "Switzerland", "NL": "the Netherlands", "SE": "Sweden", "IN": "India", "CN": "China",
	"KR": "South Korea", "AU": "Australia", "BR": "Brazil", "SG": "Singapore", "IE": "Ireland", "ES": "Spain",
	"IT": "Italy", "NO": "Norway", "PL": "Poland",
}

func pickCountry(r *rand.Rand) string {
	total := 0
	for _, c := range countries {
		total += c.weight
	}
	n := r.IntN(total)
	for _, c := range countries {
		if n < c.weight {
			return c.code
		}
		n -= c.weight
	}
	return "US"
}

// namer hands out unique names and tickers.
type namer struct {
	names   map[string]bool
	tickers map[string]bool
}

func newNamer(int64) *namer { return &namer{names: map[string]bool{}, tickers: map[string]bool{}} }

func (n *namer) next(r *rand.Rand) (name, ticker string) {
	for attempt := 0; ; attempt++ {
		name = namePrefixes[r.IntN(len(namePrefixes))] + " " + nameCores[r.IntN(len(nameCores))] + " " + legalForms[r.IntN(len(legalForms))]
		if attempt > 8 {
			name += " " + strconv.Itoa(attempt)
		}
		if !n.names[name] {
			break
		}
	}
	n.names[name] = true
	return name, n.ticker(name, r)
}

// ticker derives a ticker from the name's letters (initials first), falling back to
// random letters and finally a numeric suffix.
func (n *namer) ticker(name string, r *rand.Rand) string {
	letters := asciiLetters(name)
	words := strings.Fields(name)
	var initials string
	for _, w := range words[:len(words)-1] {
		if l := asciiLetters(w); l != "" {
			initials += l[:1]
		}
	}
	cands := []string{}
	if len(letters) >= 4 {
		cands = append(cands, letters[:4], initials+letters[1:2], letters[:3])
	}
	for i := 0; i < 20; i++ {
		b := []byte{letters[0]}
		for len(b) < 3+i%2 {
			b = append(b, byte('A'+r.IntN(26)))
		}
		cands = append(cands, string(b))
	}
	for _, c := range cands {
		if len(c) >= 2 && !n.tickers[c] {
			n.tickers[c] = true
			return c
		}
	}
	for i := 1; ; i++ {
		c := letters[:min(3, len(letters))] + strconv.Itoa(i)
		if !n.tickers[c] {
			n.tickers[c] = true
			return c
		}
	}
}

// asciiLetters upper-cases the ASCII letters of s (tickers are ASCII).
func asciiLetters(s string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(s) {
		if c >= 'A' && c <= 'Z' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "X"
	}
	return b.String()
}

// domainPart makes a host name label from a company name.
func domainPart(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c)) {
			b.WriteRune(c)
		}
	}
	return b.String()
}
