package wire

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite the golden files and fuzz seed corpora under testdata/")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
