package companies

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/corpintel/corpintel/api/web"
)

// Company is the resource as the API returns it.
type Company struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Ticker      *string   `json:"ticker"`
	Sector      *string   `json:"sector"`
	Industry    *string   `json:"industry"`
	Country     *string   `json:"country"`
	Website     *string   `json:"website"`
	Description *string   `json:"description"`
	Employees   *int64    `json:"employees"`
	FoundedYear *int32    `json:"founded_year"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Limits of the company fields (the table's CHECK constraints say the same).
const (
	maxName        = 200
	maxSector      = 100
	maxWebsite     = 2048
	maxDescription = 10000
	maxEmployees   = 10_000_000
	minFounded     = 1600
)

// Field is a JSON field of a PATCH body: it tells "absent" (Set false), "null" (Null) and
// a value apart, so that PATCH follows JSON merge-patch semantics.
type Field[T any] struct {
	Set  bool
	Null bool
	V    T
}

// UnmarshalJSON records that the field was present.
func (f *Field[T]) UnmarshalJSON(b []byte) error {
	f.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		f.Null, f.V = true, *new(T)
		return nil
	}
	f.Null = false
	return json.Unmarshal(b, &f.V)
}

// Input is the body of POST /companies (all fields) and PATCH /companies/{id} (any
// subset; null clears a field, except name which is required).
type Input struct {
	Name        Field[string] `json:"name"`
	Ticker      Field[string] `json:"ticker"`
	Sector      Field[string] `json:"sector"`
	Industry    Field[string] `json:"industry"`
	Country     Field[string] `json:"country"`
	Website     Field[string] `json:"website"`
	Description Field[string] `json:"description"`
	Employees   Field[int64]  `json:"employees"`
	FoundedYear Field[int32]  `json:"founded_year"`
}

// CreateRequest documents the POST body for the OpenAPI document.
type CreateRequest struct {
	Name        string  `json:"name"`
	Ticker      *string `json:"ticker,omitempty"`
	Sector      *string `json:"sector,omitempty"`
	Industry    *string `json:"industry,omitempty"`
	Country     *string `json:"country,omitempty"`
	Website     *string `json:"website,omitempty"`
	Description *string `json:"description,omitempty"`
	Employees   *int64  `json:"employees,omitempty"`
	FoundedYear *int32  `json:"founded_year,omitempty"`
}

var tickerRe = regexp.MustCompile(`^[A-Z0-9][A-Z0-9.\-]{0,11}$`)

// normalize trims the text fields, upper-cases ticker and country, and turns empty
// optional strings into null, so that what is stored is canonical.
func (in *Input) normalize() {
	for _, f := range []*Field[string]{&in.Name, &in.Ticker, &in.Sector, &in.Industry, &in.Country, &in.Website, &in.Description} {
		if f.Set && !f.Null {
			f.V = strings.TrimSpace(f.V)
		}
	}
	for _, f := range []*Field[string]{&in.Ticker, &in.Sector, &in.Industry, &in.Country, &in.Website, &in.Description} {
		if f.Set && !f.Null && f.V == "" {
			f.Null = true
		}
	}
	if in.Ticker.Set && !in.Ticker.Null {
		in.Ticker.V = strings.ToUpper(in.Ticker.V)
	}
	if in.Country.Set && !in.Country.Null {
		in.Country.V = strings.ToUpper(in.Country.V)
	}
}

// validate checks the fields that are set; create requires a name. now bounds
// founded_year.
func (in *Input) validate(create bool, now time.Time) []web.FieldError {
	in.normalize()
	var errs []web.FieldError
	add := func(field, msg string) { errs = append(errs, web.FieldError{Field: field, Message: msg}) }
	switch {
	case create && !in.Name.Set, in.Name.Set && (in.Name.Null || in.Name.V == ""):
		add("name", "required")
	case in.Name.Set && utf8.RuneCountInString(in.Name.V) > maxName:
		add("name", "at most 200 characters")
	case in.Name.Set && !printable(in.Name.V):
		add("name", "must not contain control characters")
	}
	if in.Ticker.Set && !in.Ticker.Null && !tickerRe.MatchString(in.Ticker.V) {
		add("ticker", "1 to 12 letters, digits, '.' or '-', starting with a letter or digit")
	}
	for _, f := range []struct {
		name string
		v    *Field[string]
	}{{"sector", &in.Sector}, {"industry", &in.Industry}} {
		if f.v.Set && !f.v.Null && (utf8.RuneCountInString(f.v.V) > maxSector || !printable(f.v.V)) {
			add(f.name, "at most 100 printable characters")
		}
	}
	if in.Country.Set && !in.Country.Null && !ValidCountry(in.Country.V) {
		add("country", "an ISO 3166-1 alpha-2 code such as US or DE")
	}
	if in.Website.Set && !in.Website.Null && !validWebsite(in.Website.V) {
		add("website", "an absolute http or https URL of at most 2048 characters")
	}
	if in.Description.Set && !in.Description.Null && utf8.RuneCountInString(in.Description.V) > maxDescription {
		add("description", "at most 10000 characters")
	}
	if in.Employees.Set && !in.Employees.Null && (in.Employees.V < 0 || in.Employees.V > maxEmployees) {
		add("employees", "between 0 and 10000000")
	}
	if in.FoundedYear.Set && !in.FoundedYear.Null && (in.FoundedYear.V < minFounded || int(in.FoundedYear.V) > now.Year()+1) {
		add("founded_year", "a year between 1600 and next year")
	}
	return errs
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validWebsite(s string) bool {
	if len(s) > maxWebsite {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// ValidCountry reports whether c is an assigned ISO 3166-1 alpha-2 code (upper case).
func ValidCountry(c string) bool {
	if len(c) != 2 {
		return false
	}
	return strings.Contains(isoCountries, " "+c+" ")
}

// isoCountries lists the officially assigned ISO 3166-1 alpha-2 codes.
const isoCountries = " AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ" +
	" CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR" +
	" GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP" +
	" KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT" +
	" MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW" +
	" SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG" +
	" UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW "
