package password

import (
	"errors"
	"strings"
	"testing"
)

var fast = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	for _, pw := range []string{"correct horse battery staple", "ünïcødé-пароль-密码", ""} {
		h, err := HashWith([]byte(pw), fast)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("unexpected PHC string %q", h)
		}
		ok, err := Verify([]byte(pw), h)
		if err != nil || !ok {
			t.Fatalf("Verify(%q) = %v, %v; want true", pw, ok, err)
		}
		ok, err = Verify([]byte(pw+"x"), h)
		if err != nil || ok {
			t.Fatalf("Verify(wrong) = %v, %v; want false", ok, err)
		}
	}
}

func TestDefaultHash(t *testing.T) {
	h, err := Hash([]byte("pw-default-params"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "m=19456,t=2,p=1") {
		t.Fatalf("default parameters not in hash: %s", h)
	}
	if ok, _ := Verify([]byte("pw-default-params"), h); !ok {
		t.Fatal("default hash does not verify")
	}
	VerifyDummy([]byte("x")) // must not panic
}

func TestMalformed(t *testing.T) {
	good, _ := HashWith([]byte("pw"), fast)
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":        "",
		"bcrypt":       "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":      strings.Replace(good, "argon2id", "argon2i", 1),
		"version":      strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":  strings.Replace(good, "m=64", "m=4194304", 1),
		"zero time":    strings.Replace(good, "t=1", "t=0", 1),
		"bad param":    strings.Replace(good, "p=1", "q=1", 1),
		"nonnum":       strings.Replace(good, "p=1", "p=x", 1),
		"no eq":        strings.Replace(good, "p=1", "p1", 1),
		"threads 300":  strings.Replace(good, "p=1", "p=300", 1),
		"bad salt":     "$" + strings.Join([]string{parts[1], parts[2], parts[3], "!!", parts[5]}, "$"),
		"short key":    "$" + strings.Join([]string{parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$"),
		"extra fields": good + "$x",
	} {
		if _, err := Verify([]byte("pw"), h); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	good, _ := HashWith([]byte("pw"), fast)
	f.Add("pw", good)
	f.Add("", "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, pw, h string) {
		p, _, _, err := parse(h) // must not panic, must bound the parameters
		if err != nil {
			return
		}
		if p.Memory > 256*1024 || p.Time > 16 || p.Threads > 16 {
			t.Fatalf("accepted parameters %+v", p)
		}
		// Run the (argon2) verification only for tiny parameters: every execution must stay
		// far below a millisecond, or short -fuzztime runs end mid-execution (the cost path
		// is tested above).
		if p.Memory <= 64 && p.Time == 1 && p.Threads <= 2 {
			_, _ = Verify([]byte(pw), h)
		}
	})
}
