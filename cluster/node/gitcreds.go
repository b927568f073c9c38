package node

import (
	"strings"
)

// encodeGitCredentials is keyGitCredentials' content.
func encodeGitCredentials(user *string, password string) string {
	u := ""
	if user != nil {
		u = strings.TrimSpace(*user)
	}
	return u + "\n" + password
}
