package spec

import (
	"strconv"
	"strings"
)

// exported turns a parser's *Error into the error interface of the
// exported Parse functions, so that no error means a nil error (not a nil
// *Error inside a non-nil interface).
func exported[T any](v *T, err *Error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// fieldList builds the comma-separated key=value list of a canonical form.
type fieldList []string

// add appends k=v unless v is empty.
func (f *fieldList) add(k, v string) {
	if v != "" {
		*f = append(*f, k+"="+v)
	}
}

// num appends k=n when n is positive.
func (f *fieldList) num(k string, n int) {
	if n > 0 {
		f.add(k, strconv.Itoa(n))
	}
}

// flag appends the bare key k when on.
func (f *fieldList) flag(k string, on bool) {
	if on {
		*f = append(*f, k)
	}
}

// secret appends k=v unless v is empty, with v shown as "*" when redact.
func (f *fieldList) secret(k, v string, redact bool) {
	if v != "" && redact {
		v = "*"
	}
	f.add(k, v)
}

// join returns proto:k=v,... .
func (f fieldList) join(proto string) string { return proto + ":" + strings.Join(f, ",") }
