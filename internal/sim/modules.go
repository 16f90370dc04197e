package sim

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// The loaded-module list (PsLoadedModuleList). Like a Windows x64 kernel,
// the list head in the image links LDR_DATA_TABLE_ENTRY records in load
// order: ntoskrnl.exe first (DllBase = KernBase), then hal.dll and the boot
// drivers. Each module's image starts with a minimal PE header (MZ,
// e_lfanew, PE signature, file header and the start of the PE32+ optional
// header), so a debugger that walks the list and reads each header finds
// consistent sizes and entry points. Everything moves with KernBase at
// every boot.
const (
	// Modules is how many entries the list has, ntoskrnl.exe included.
	Modules = 150

	// OffLoaderEntries is where, from KernBase, the LDR_DATA_TABLE_ENTRY
	// records live (one every LoaderEntryStride bytes; the entry's
	// FullDllName buffer follows it, BaseDllName points into its tail).
	OffLoaderEntries  uint64 = 0xC40000
	LoaderEntryStride uint64 = 0x200

	// OffModules is where, from KernBase, the other modules' images start,
	// one every ModuleStride bytes, right after the kernel image.
	OffModules   uint64 = KernSize
	ModuleStride uint64 = 0x40000
	// ModulesSize is the size of the region holding the modules' images.
	ModulesSize uint64 = (Modules - 1) * ModuleStride
)

// Offsets inside an x64 LDR_DATA_TABLE_ENTRY (public layout, unchanged
// since Windows XP x64) and a UNICODE_STRING.
const (
	LdrInLoadOrderLinks uint64 = 0x00 // LIST_ENTRY Flink, Blink
	LdrDllBase          uint64 = 0x30
	LdrEntryPoint       uint64 = 0x38
	LdrSizeOfImage      uint64 = 0x40 // u32
	LdrFullDllName      uint64 = 0x48 // UNICODE_STRING
	LdrBaseDllName      uint64 = 0x58 // UNICODE_STRING
	LdrEntrySize        uint64 = 0xA0 // what a debugger reads of one entry

	ustrLength    = 0 // u16, bytes, no terminator
	ustrMaxLength = 2 // u16
	ustrBuffer    = 8 // u64 pointer
)

// PE header offsets used by the simulated images.
const (
	peHeaderOffset = 0x108 // e_lfanew
	peOptional     = 0x18  // optional header, from the PE signature
	// PEHeaderSize is how much of an image's start holds its headers (a
	// debugger reads this much to find the sizes and the entry point).
	PEHeaderSize = 0x400
)

// Module is one entry of the simulated loaded-module list.
type Module struct {
	Entry      uint64 // address of its LDR_DATA_TABLE_ENTRY
	Base       uint64 // DllBase
	Size       uint32 // SizeOfImage
	EntryPoint uint64
	Name       string // BaseDllName
	Path       string // FullDllName
}

// bootDrivers are the first modules after ntoskrnl.exe, in a typical
// load order; the rest of the list gets numbered third-party names.
var bootDrivers = []string{
	"hal.dll", "kd.dll", "mcupdate_GenuineIntel.dll", "msrpc.sys", "ksecdd.sys", "werkernel.sys",
	"CLFS.SYS", "tm.sys", "PSHED.dll", "BOOTVID.dll", "FLTMGR.SYS", "clipsp.sys", "cmimcext.sys",
	"ntosext.sys", "CI.dll", "cng.sys", "Wdf01000.sys", "WDFLDR.SYS", "SleepStudyHelper.sys",
	"WppRecorder.sys", "acpiex.sys", "mssecflt.sys", "SgrmAgent.sys", "ACPI.sys", "WMILIB.SYS",
	"intelpep.sys", "WindowsTrustedRT.sys", "IntelTA.sys", "WindowsTrustedRTProxy.sys", "pcw.sys",
	"msisadrv.sys", "pci.sys", "vdrvroot.sys", "pdc.sys", "CEA.sys", "partmgr.sys", "spaceport.sys",
	"volmgr.sys", "volmgrx.sys", "mountmgr.sys", "storahci.sys", "storport.sys", "stornvme.sys",
	"EhStorClass.sys", "fileinfo.sys", "Wof.sys", "WdFilter.sys", "Ntfs.sys", "Fs_Rec.sys",
	"ndis.sys", "NETIO.SYS", "ksecpkg.sys", "tcpip.sys", "fwpkclnt.sys", "wfplwfs.sys",
	"fvevol.sys", "volume.sys", "volsnap.sys", "rdyboost.sys", "mup.sys", "iorate.sys",
	"disk.sys", "CLASSPNP.SYS", "crashdmp.sys", "cdrom.sys", "filecrypt.sys", "tbs.sys",
	"Null.SYS", "Beep.SYS", "vga.sys", "VIDEOPRT.SYS", "watchdog.sys", "BasicDisplay.sys",
	"BasicRender.sys", "Npfs.SYS", "Msfs.SYS", "CimFS.SYS", "tdx.sys", "TDI.SYS", "netbt.sys",
	"afunix.sys", "afd.sys", "vwififlt.sys", "pacer.sys", "ndiscap.sys", "netbios.sys",
	"rdbss.sys", "csc.sys", "nsiproxy.sys", "npsvctrig.sys", "mssmbios.sys", "gpuenergydrv.sys",
	"dfsc.sys", "fastfat.SYS", "bam.sys", "ahcache.sys", "Vid.sys", "CompositeBus.sys",
	"kdnic.sys", "umbus.sys", "i8042prt.sys", "kbdclass.sys", "mouclass.sys", "serial.sys",
	"serenum.sys", "intelppm.sys", "e1i63x64.sys", "HDAudBus.sys", "portcls.dll", "drmk.sys",
	"ks.sys", "usbehci.sys", "USBPORT.SYS", "usbhub.sys", "USBD.SYS", "HdAudio.sys",
	"swenum.sys", "rdpbus.sys", "NdisVirtualBus.sys", "vmgencounter.sys", "dxgkrnl.sys",
	"dxgmms2.sys", "monitor.sys", "condrv.sys", "win32k.sys", "win32kbase.sys", "win32kfull.sys",
	"cdd.dll", "luafv.sys", "wcifs.sys", "cldflt.sys", "storqosflt.sys", "bindflt.sys",
	"lltdio.sys", "mslldp.sys", "rspndr.sys", "wanarp.sys", "HTTP.sys", "bowser.sys",
	"mpsdrv.sys", "mrxsmb.sys", "mrxsmb20.sys", "srvnet.sys", "srv2.sys", "peauth.sys",
	"tcpipreg.sys", "rassstp.sys", "NDProxy.sys", "AgileVpn.sys", "rasl2tp.sys", "raspptp.sys",
	"raspppoe.sys", "ndistapi.sys", "ndiswan.sys", "WdNisDrv.sys", "MpKslDrv.sys",
}

// moduleName is the base name of module i (0 is the kernel).
func moduleName(i int) string {
	switch {
	case i == 0:
		return "ntoskrnl.exe"
	case i-1 < len(bootDrivers):
		return bootDrivers[i-1]
	default:
		return fmt.Sprintf("oem%03d.sys", i)
	}
}

// ModulesAt is the loaded-module list of a kernel loaded at kernBase.
func ModulesAt(kernBase uint64) []Module {
	mods := make([]Module, Modules)
	for i := range mods {
		m := &mods[i]
		m.Entry = kernBase + OffLoaderEntries + uint64(i)*LoaderEntryStride
		m.Name = moduleName(i)
		if i == 0 {
			m.Base, m.Size = kernBase, uint32(KernSize)
			m.Path = `\SystemRoot\system32\ntoskrnl.exe`
		} else {
			m.Base = kernBase + OffModules + uint64(i-1)*ModuleStride
			// Sizes vary with the module but stay inside its slot.
			m.Size = uint32(0x8000 + uint64(i*0x3000)%(ModuleStride-0x8000))
			m.Path = `\SystemRoot\system32\drivers\` + m.Name
			if i == 1 || i == 2 {
				m.Path = `\SystemRoot\system32\` + m.Name
			}
		}
		m.EntryPoint = m.Base + 0x1000 + uint64(i)*0x10
	}
	return mods
}

// Modules returns the current boot's loaded-module list.
func (m *Machine) Modules() []Module {
	return ModulesAt(m.Layout().KernBase)
}

// writePEHeader writes a minimal PE32+ header of an image at base.
func writePEHeader(m *Memory, base uint64, size uint32, entry uint64, stamp uint32) {
	m.write(base, []byte{'M', 'Z'}, true)
	m.put32(base+0x3C, peHeaderOffset)
	pe := base + peHeaderOffset
	m.write(pe, []byte{'P', 'E', 0, 0, 0x64, 0x86}, true) // signature, Machine AMD64
	m.write(pe+6, []byte{1, 0}, true)                     // NumberOfSections
	m.put32(pe+8, stamp)                                  // TimeDateStamp
	m.write(pe+0x14, []byte{0xF0, 0, 0x22, 0}, true)      // SizeOfOptionalHeader, Characteristics
	opt := pe + peOptional
	m.write(opt, []byte{0x0B, 0x02}, true) // PE32+ magic
	m.put32(opt+0x10, uint32(entry-base))  // AddressOfEntryPoint
	m.put64(opt+0x18, base)                // ImageBase
	m.put32(opt+0x38, size)                // SizeOfImage
	m.put32(opt+0x3C, PEHeaderSize)        // SizeOfHeaders
}

// buildModules lays out the loaded-module list of a boot. The caller
// holds m.mu and has mapped the kernel image.
func (m *Machine) buildModules() {
	mem := m.mem
	lo := m.layout
	mem.Map("modules", lo.KernBase+OffModules, ModulesSize, true, nil)
	mods := ModulesAt(lo.KernBase)
	head := lo.PsLoadedModuleList
	for i, mod := range mods {
		flink, blink := head, head
		if i+1 < len(mods) {
			flink = mods[i+1].Entry
		}
		if i > 0 {
			blink = mods[i-1].Entry
		}
		e := mod.Entry
		mem.put64(e+LdrInLoadOrderLinks, flink)
		mem.put64(e+LdrInLoadOrderLinks+8, blink)
		mem.put64(e+LdrDllBase, mod.Base)
		mem.put64(e+LdrEntryPoint, mod.EntryPoint)
		mem.put32(e+LdrSizeOfImage, mod.Size)
		full := utf16le(mod.Path)
		buf := e + LdrEntrySize
		mem.write(buf, full, true)
		putUnicodeString(mem, e+LdrFullDllName, len(full), buf)
		base := utf16le(mod.Name)
		putUnicodeString(mem, e+LdrBaseDllName, len(base), buf+uint64(len(full)-len(base)))
		writePEHeader(mem, mod.Base, mod.Size, mod.EntryPoint, 0x5c000000+uint32(i))
	}
	mem.put64(head, mods[0].Entry)
	mem.put64(head+8, mods[len(mods)-1].Entry)
}

func putUnicodeString(m *Memory, at uint64, n int, buf uint64) {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[ustrLength:], uint16(n))
	binary.LittleEndian.PutUint16(b[ustrMaxLength:], uint16(n+2))
	binary.LittleEndian.PutUint64(b[ustrBuffer:], buf)
	m.write(at, b, true)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}
