package compose

import (
	"io"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// compose-go logs through the global logrus logger; gitorc reports the same
// things as diagnostics, which the tests check.
func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}
