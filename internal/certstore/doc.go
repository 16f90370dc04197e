// Package certstore finds the server certificate that an ssl or spipe
// transport presents, and builds the crypto/tls configurations that both ends
// of such a transport use.
//
// A certificate is named the way the original tool names it: by subject
// common name, by friendly name, or by SHA-1 thumbprint in hex (spaces,
// colons and case ignored, exactly as the Windows certificate snap-in shows
// it). A SHA-256 thumbprint is accepted as well.
//
// Two stores exist, as on Windows: the user store (certuser=) and the machine
// store (machuser=). On Linux and macOS each store is a directory of PEM files:
//
//	user store     $KDSRV_USER_CERTS, else $XDG_CONFIG_HOME/kdsrv/certs, else ~/.config/kdsrv/certs
//	machine store  $KDSRV_MACHINE_CERTS, else /etc/kdsrv/certs
//
// On Windows, unless a directory is given explicitly or through the same
// environment variables, the stores are the system stores CurrentUser\My and
// LocalMachine\My, and private keys are used through CNG (NCrypt) without
// ever leaving the key storage provider.
//
// In a PEM directory, files named *.crt, *.pem, *.cer and *.key are read.
// The first certificate in a file is a store entry; any further certificates
// in the same file are its chain and are sent with it. Private keys (PKCS#8,
// SEC 1 or PKCS#1, unencrypted) may sit in the same file or in any other file
// of the directory: a key is paired with the certificate whose public key it
// matches, never by file name. A friendly name is read from a sidecar file
// BASE.friendlyname next to BASE.crt (first line), or from a "Friendly-Name"
// PEM header on the certificate block.
//
// Every failure is an *Error whose Kind is one of the Err* sentinels, so
// callers can use errors.Is and users get a message that says what was
// looked for, where, what is there and what to do. docs/certificates.md is
// the user-facing guide.
package certstore
