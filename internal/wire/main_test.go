package wire

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	prepareTestKeys()
	goleak.VerifyTestMain(m)
}
