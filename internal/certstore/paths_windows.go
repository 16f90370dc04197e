//go:build windows

package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"unsafe"

	"golang.org/x/sys/windows"
)

// defaultDir returns "" on Windows: the default stores are the system
// stores CurrentUser\My and LocalMachine\My.
func defaultDir(Scope) (string, error) { return "", nil }

// systemStoreName names the system store of a scope as certlm/certmgr do.
func systemStoreName(s Scope) string {
	if s == Machine {
		return `LocalMachine\My`
	}
	return `CurrentUser\My`
}

var (
	modcrypt32                            = windows.NewLazySystemDLL("crypt32.dll")
	procCertGetCertificateContextProperty = modcrypt32.NewProc("CertGetCertificateContextProperty")
	modncrypt                             = windows.NewLazySystemDLL("ncrypt.dll")
	procNCryptSignHash                    = modncrypt.NewProc("NCryptSignHash")
	procNCryptFreeObject                  = modncrypt.NewProc("NCryptFreeObject")
)

// Windows constants not defined by golang.org/x/sys/windows.
const (
	certFriendlyNamePropID = 11  // CERT_FRIENDLY_NAME_PROP_ID
	bcryptPadPKCS1         = 0x2 // BCRYPT_PAD_PKCS1
	bcryptPadPSS           = 0x8 // BCRYPT_PAD_PSS
)

// listSystem reads the My store of the scope.
func listSystem(s Store) ([]*Entry, error) {
	flags := uint32(windows.CERT_SYSTEM_STORE_CURRENT_USER)
	if s.Scope == Machine {
		flags = windows.CERT_SYSTEM_STORE_LOCAL_MACHINE
	}
	flags |= windows.CERT_STORE_READONLY_FLAG | windows.CERT_STORE_OPEN_EXISTING_FLAG
	my, err := windows.UTF16PtrFromString("MY")
	if err != nil {
		return nil, err
	}
	h, err := windows.CertOpenStore(windows.CERT_STORE_PROV_SYSTEM, 0, 0, flags, uintptr(unsafe.Pointer(my)))
	if err != nil {
		return nil, &Error{Kind: ErrUnreadable, Op: "list", Store: s.String(),
			Detail: "cannot open the Windows certificate store; or set " + s.envName() + " to a PEM directory", Err: err}
	}
	defer windows.CertCloseStore(h, 0)
	var (
		entries []*Entry
		prev    *windows.CertContext
	)
	for {
		ctx, err := windows.CertEnumCertificatesInStore(h, prev)
		if ctx == nil || err != nil {
			break // CRYPT_E_NOT_FOUND ends the enumeration; prev was freed
		}
		prev = ctx
		der := append([]byte(nil), unsafe.Slice(ctx.EncodedCert, ctx.Length)...)
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue // not something crypto/tls could serve
		}
		e := &Entry{Certificate: cert, Source: systemStoreName(s.Scope), FriendlyName: friendlyName(ctx)}
		key, err := acquireKey(ctx, cert.PublicKey)
		if err != nil {
			e.keyNote = err.Error()
		} else {
			e.Key, e.KeySource = key, systemStoreName(s.Scope)+" (CNG)"
		}
		entries = append(entries, e)
	}
	return dedupe(entries), nil
}

// friendlyName reads CERT_FRIENDLY_NAME_PROP_ID, or "".
func friendlyName(ctx *windows.CertContext) string {
	var size uint32
	r, _, _ := procCertGetCertificateContextProperty.Call(uintptr(unsafe.Pointer(ctx)), certFriendlyNamePropID, 0, uintptr(unsafe.Pointer(&size)))
	if r == 0 || size < 2 {
		return ""
	}
	buf := make([]uint16, size/2)
	r, _, _ = procCertGetCertificateContextProperty.Call(uintptr(unsafe.Pointer(ctx)), certFriendlyNamePropID,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)))
	if r == 0 {
		return ""
	}
	return windows.UTF16ToString(buf)
}

// acquireKey opens the CNG key of a certificate, if it has one this user may
// use without a prompt.
func acquireKey(ctx *windows.CertContext, pub crypto.PublicKey) (crypto.Signer, error) {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("keys of type %T are not supported in the Windows store", pub)
	}
	var (
		h          windows.Handle
		spec       uint32
		callerFree bool
	)
	flags := uint32(windows.CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | windows.CRYPT_ACQUIRE_SILENT_FLAG)
	if err := windows.CryptAcquireCertificatePrivateKey(ctx, flags, nil, &h, &spec, &callerFree); err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return nil, fmt.Errorf("access to the private key was denied; run elevated or grant this account read access to the key (certlm.msc, Manage Private Keys): %w", err)
		}
		return nil, fmt.Errorf("the certificate has no usable CNG private key: %w", err)
	}
	if spec != windows.CERT_NCRYPT_KEY_SPEC {
		return nil, errors.New("the private key is a legacy CryptoAPI key; re-import it with a CNG key storage provider")
	}
	s := &ncryptSigner{h: h, pub: pub}
	if callerFree {
		runtime.AddCleanup(s, func(h windows.Handle) { procNCryptFreeObject.Call(uintptr(h)) }, h)
	} else {
		// The handle belongs to a cached copy of the context: keep one alive.
		dup := windows.CertDuplicateCertificateContext(ctx)
		runtime.AddCleanup(s, func(c *windows.CertContext) { windows.CertFreeCertificateContext(c) }, dup)
	}
	return s, nil
}

// ncryptSigner signs with a CNG key; the key never leaves its provider.
type ncryptSigner struct {
	h   windows.Handle
	pub crypto.PublicKey
}

func (s *ncryptSigner) Public() crypto.PublicKey { return s.pub }

type bcryptPKCS1PaddingInfo struct{ algID *uint16 }

type bcryptPSSPaddingInfo struct {
	algID   *uint16
	saltLen uint32
}

func (s *ncryptSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if len(digest) == 0 {
		return nil, errors.New("certstore: NCrypt sign: empty digest")
	}
	var (
		pad   unsafe.Pointer
		flags uintptr
	)
	if _, isRSA := s.pub.(*rsa.PublicKey); isRSA {
		alg, err := hashAlgID(opts.HashFunc())
		if err != nil {
			return nil, err
		}
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := pss.SaltLength
			if salt == rsa.PSSSaltLengthEqualsHash || salt == rsa.PSSSaltLengthAuto {
				salt = opts.HashFunc().Size()
			}
			pad, flags = unsafe.Pointer(&bcryptPSSPaddingInfo{algID: alg, saltLen: uint32(salt)}), bcryptPadPSS
		} else {
			pad, flags = unsafe.Pointer(&bcryptPKCS1PaddingInfo{algID: alg}), bcryptPadPKCS1
		}
	}
	var size uint32
	if r, _, _ := procNCryptSignHash.Call(uintptr(s.h), uintptr(pad), uintptr(unsafe.Pointer(&digest[0])), uintptr(len(digest)),
		0, 0, uintptr(unsafe.Pointer(&size)), flags); r != 0 {
		return nil, fmt.Errorf("certstore: NCryptSignHash (size): status 0x%08x", uint32(r))
	}
	sig := make([]byte, size)
	if r, _, _ := procNCryptSignHash.Call(uintptr(s.h), uintptr(pad), uintptr(unsafe.Pointer(&digest[0])), uintptr(len(digest)),
		uintptr(unsafe.Pointer(&sig[0])), uintptr(size), uintptr(unsafe.Pointer(&size)), flags); r != 0 {
		return nil, fmt.Errorf("certstore: NCryptSignHash: status 0x%08x", uint32(r))
	}
	runtime.KeepAlive(pad)
	runtime.KeepAlive(s)
	sig = sig[:size]
	if _, isEC := s.pub.(*ecdsa.PublicKey); isEC {
		// CNG returns r||s; crypto.Signer callers expect ASN.1 DER.
		half := len(sig) / 2
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:])})
	}
	return sig, nil
}

// hashAlgID returns the CNG algorithm name of a hash.
func hashAlgID(h crypto.Hash) (*uint16, error) {
	var name string
	switch h {
	case crypto.SHA1:
		name = "SHA1"
	case crypto.SHA256:
		name = "SHA256"
	case crypto.SHA384:
		name = "SHA384"
	case crypto.SHA512:
		name = "SHA512"
	default:
		return nil, fmt.Errorf("certstore: NCrypt sign: unsupported hash %v", h)
	}
	return windows.UTF16PtrFromString(name)
}
