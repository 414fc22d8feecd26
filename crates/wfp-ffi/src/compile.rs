//! `wfpctl driver build`: compiles WDK-style C and C++ sources into a driver image with the flags
//! of wdk-runtime.md §10 against the bundled headers, generating the `name.tmh` headers that
//! WPP-style sources include, and checks that every function the driver imports is one the runtime
//! exports (a missing API fails the build, as `-Wl,--no-undefined` against the WDK's import
//! libraries does). C++ sources (`.cpp`, `.cc`, `.cxx`) are compiled by `$CXX` (default `c++`)
//! with the WDK's kernel-mode C++ settings ([`CXX_ONLY_FLAGS`]); C and C++ sources mix in one
//! driver. `include/wfp-ddk.pc` documents the same flags for other build systems.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod anon;
mod localcopy;
mod msvc;

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// C and C++ sources (by extension: `.cpp`, `.cc`, `.cxx` are C++, anything else C).
    pub sources: Vec<PathBuf>,
    /// The driver image to write (`DRIVER.so`).
    pub output: PathBuf,
    /// Extra include directories (`-I`).
    pub include_dirs: Vec<PathBuf>,
    /// Extra macro definitions (`-D NAME` or `-D NAME=VALUE`).
    pub defines: Vec<String>,
    /// Extra compiler flags (for example `-fsanitize=address`).
    pub extra_flags: Vec<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The compiler could not be started.
    #[error("cannot run the C compiler {compiler:?}: {source}")]
    Compiler {
        /// The compiler command.
        compiler: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The compiler reported errors (already shown on standard error, as the compiler wrote them).
    #[error("the C compiler failed (exit status {status})")]
    CompileFailed {
        /// Its exit status.
        status: i32,
    },
    /// The driver calls functions the runtime does not provide.
    #[error("the driver imports functions the wfp-ffi runtime does not provide: {}", missing.join(", "))]
    MissingImports {
        /// The names.
        missing: Vec<String>,
    },
    /// A temporary file could not be written, or a source could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The directory holding the WDK-named headers: `$WFP_DDK_INCLUDE`, else the repository's
/// `include/`.
pub fn include_dir() -> PathBuf {
    std::env::var_os("WFP_DDK_INCLUDE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include"),
        PathBuf::from,
    )
}

/// Preprocessor definitions for driver translation units (wdk-runtime.md §10).
pub const DEFINES: &[&str] = &[
    "_WIN64",
    "_AMD64_",
    "NTDDI_VERSION=0x0A00000C",
    "_WIN32_WINNT=0x0A00",
    "WINVER=0x0A00",
    "_KERNEL_MODE",
    "DBG=1",
    "POOL_NX_OPTIN_AUTO=1",
    "UNICODE",
    "_UNICODE",
    "NDIS_SUPPORT_NDIS6=1",
    "NDIS630=1",
    "BINARY_COMPATIBLE=0",
];

/// Compiler flags for driver translation units (wdk-runtime.md §10).
pub const CFLAGS: &[&str] = &[
    "-std=gnu11",
    "-fPIC",
    "-fshort-wchar",
    "-fno-strict-aliasing",
    "-fwrapv",
    "-fsigned-char",
    "-fvisibility=hidden",
    "-Wall",
    "-Wno-unknown-pragmas",
    "-Wno-multichar",
    "-Wno-format",
    "-Wno-unused-parameter",
    "-Wno-unused-local-typedefs",
    "-Wno-unused-function",
    "-Werror=implicit-function-declaration",
    "-g",
    "-O2",
];

/// Flags for C++ translation units in place of `-std=gnu11` (the C-only entries of [`CFLAGS`] are
/// left out for them): what the WDK's `/kernel` switch implies for MSVC — no exceptions, no RTTI,
/// no thread-safe initialisation of function-local statics (it would call the C++ runtime's
/// `__cxa_guard_*`, which a driver cannot import).
///
/// And MSVC's treatment of `inline`: without `/Zc:inline` (off unless a project asks for it) MSVC
/// emits every inline function a translation unit defines as a COMDAT, referenced or not, and the
/// linker's `/OPT:REF` then drops the ones nothing references. Drivers rely on it: WFPSampler's
/// syslib defines helpers `inline` in one `.cpp` and calls them from others (ill-formed C++ that
/// g++ would leave undefined). `-fkeep-inline-functions` emits them, `-ffunction-sections` puts
/// each in its own section, and a C++ image is linked with `--gc-sections` (see [`build`]), which
/// drops what nothing references — the inline functions of the C/C++ library headers among them,
/// whose imports (`ldiv`, `std::terminate`, libgcc's float128 helpers) a driver could not resolve.
pub const CXX_ONLY_FLAGS: &[&str] = &[
    "-std=gnu++17",
    "-fno-exceptions",
    "-fno-rtti",
    "-fno-threadsafe-statics",
    "-fkeep-inline-functions",
    "-ffunction-sections",
];

/// [`CFLAGS`] entries that only apply to C.
const C_ONLY_FLAGS: &[&str] = &["-std=gnu11", "-Werror=implicit-function-declaration"];

/// The compiler flags for a C++ translation unit: [`CFLAGS`] without its C-only entries, then
/// [`CXX_ONLY_FLAGS`].
pub fn cxx_flags() -> Vec<&'static str> {
    CFLAGS
        .iter()
        .copied()
        .filter(|f| !C_ONLY_FLAGS.contains(f))
        .chain(CXX_ONLY_FLAGS.iter().copied())
        .collect()
}

/// The language of a source file, from its extension (as GCC decides it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// `.c` and anything not C++.
    C,
    /// `.cpp`, `.cc`, `.cxx`, `.c++`, `.C`.
    Cxx,
}

impl Language {
    /// The language of `path`.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("cpp" | "cc" | "cxx" | "c++" | "C" | "CPP") => Self::Cxx,
            _ => Self::C,
        }
    }

    /// The compiler for this language: `$CC` (default `cc`) or `$CXX` (default `c++`).
    fn compiler(self) -> String {
        match self {
            Self::C => std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            Self::Cxx => std::env::var("CXX").unwrap_or_else(|_| "c++".into()),
        }
    }

    /// The file extension a rewritten copy keeps.
    fn extension(self) -> &'static str {
        match self {
            Self::C => "c",
            Self::Cxx => "cpp",
        }
    }
}

/// Symbols a driver may import from the C library besides the runtime's exports (compiler-emitted
/// memory and string calls, the narrow string functions ntoskrnl also exports, stack protector,
/// ELF start-up hooks). Formatting functions are not among them: glibc's `%l` is 64-bit.
const LIBC_IMPORTS: &[&str] = &[
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "memchr",
    "strlen",
    "strnlen",
    "strcmp",
    "strncmp",
    "strchr",
    "strrchr",
    "strstr",
    "strcpy",
    "strncpy",
    "strcat",
    "strncat",
    "strcasecmp",
    "strncasecmp",
    "__stack_chk_fail",
    "__cxa_finalize",
    // C++: a global object's destructor is registered at load and runs when the image is
    // unloaded (dlclose runs __cxa_finalize for it).
    "__cxa_atexit",
    "__memcpy_chk",
    "__memset_chk",
    "__memmove_chk",
];

/// Builds a driver image; compiler diagnostics go to standard error unchanged.
pub fn build(opts: &BuildOptions) -> Result<(), BuildError> {
    let work = tempdir()?;
    let result = build_in(opts, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn build_in(opts: &BuildOptions, work: &Path) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    for src in &opts.sources {
        let mut text = read_source(src).map_err(io(src))?.text;
        // WPP scans the headers a source includes too (trace.h usually holds the control GUID,
        // its flags and the config block).
        text.push_str(&local_headers(&text, src, &opts.include_dirs));
        for (name, body) in tmh_files(&text) {
            let p = work.join(name);
            std::fs::write(&p, body).map_err(io(&p))?;
        }
    }
    let script = work.join("exports.map");
    std::fs::write(&script, "{ global: DriverEntry; local: *; };\n").map_err(io(&script))?;
    // The C compiler links C++ objects too: a driver gets no C++ runtime library (what it
    // imports from one is reported by check_imports), as the WDK links none.
    let compiler = Language::C.compiler();
    let objects = compile_sources(opts, work)?;
    weaken_duplicates(&objects)?;
    let mut cmd = Command::new(&compiler);
    // C++: drop the unreferenced inline functions CXX_ONLY_FLAGS keeps (MSVC's /OPT:REF).
    let has_cxx = opts
        .sources
        .iter()
        .any(|s| Language::of(s) == Language::Cxx);
    cmd.args(&opts.extra_flags)
        .args(&objects)
        .args(has_cxx.then_some("-Wl,--gc-sections"))
        .arg("-shared")
        .arg(format!("-Wl,--version-script={}", script.display()))
        .arg("-o")
        .arg(&opts.output);
    run(&mut cmd, &compiler)?;
    check_imports(&opts.output)
}

/// Runs a compiler or tool command; its diagnostics go to standard error as they are.
fn run(cmd: &mut Command, tool: &str) -> Result<(), BuildError> {
    let status = cmd.status().map_err(|source| BuildError::Compiler {
        compiler: tool.to_string(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::CompileFailed {
            status: status.code().unwrap_or(-1),
        })
    }
}

/// Flags that turn GCC 14 / Clang 16 errors back into the warnings MSVC gives for the same code
/// (wdk-runtime.md §10: mismatched function-pointer types, pointer/integer conversions, `return x;`
/// in a void function); each only where `compiler` knows it.
fn leniency_flags(compiler: &str) -> Vec<&'static str> {
    const CANDIDATES: &[&str] = &[
        "-Wno-error=incompatible-pointer-types",
        "-Wno-error=int-conversion",
        "-Wno-error=return-mismatch",
        "-Wno-error=incompatible-function-pointer-types",
        "-Wno-error=return-type",
    ];
    CANDIDATES
        .iter()
        .copied()
        .filter(|flag| {
            Command::new(compiler)
                .args([flag, "-Werror", "-fsyntax-only", "-x", "c", "/dev/null"])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect()
}

/// Compiles each source to its own object (as the WDK's build does), in `work`: C sources with
/// `$CC` and [`CFLAGS`] (plus the leniency flags), C++ sources with `$CXX` and [`cxx_flags`].
fn compile_sources(opts: &BuildOptions, work: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let c_compiler = Language::C.compiler();
    let mut lenient: Option<Vec<&str>> = None;
    let mut objects = Vec::new();
    for (i, src) in opts.sources.iter().enumerate() {
        let lang = Language::of(src);
        let compiler = lang.compiler();
        let flags: Vec<&str> = match lang {
            Language::C => {
                let lenient = lenient.get_or_insert_with(|| leniency_flags(&c_compiler));
                CFLAGS
                    .iter()
                    .copied()
                    .chain(lenient.iter().copied())
                    .collect()
            }
            Language::Cxx => cxx_flags(),
        };
        let stem = src
            .file_stem()
            .map_or_else(|| "source".into(), |s| s.to_string_lossy().into_owned());
        let obj = work.join(format!("{i}-{stem}.o"));
        let copy_name = format!("{i}-{stem}.{}", lang.extension());
        let input = localcopy::prepare(src, work, &copy_name, &opts.include_dirs)?;
        let mut cmd = Command::new(&compiler);
        cmd.args(&flags)
            .args(DEFINES.iter().map(|d| format!("-D{d}")))
            .arg(format!("-I{}", work.display()))
            .arg(format!("-I{}", include_dir().display()))
            .args(
                opts.include_dirs
                    .iter()
                    .map(|d| format!("-I{}", d.display())),
            )
            .args(opts.defines.iter().map(|d| format!("-D{d}")))
            .args(&opts.extra_flags)
            .args(input.iter().flat_map(|_| quote_dir(src)))
            .arg("-c")
            .arg(input.as_deref().unwrap_or(src))
            .arg("-o")
            .arg(&obj);
        run(&mut cmd, &compiler)?;
        objects.push(obj);
    }
    Ok(objects)
}

/// A source file's text. WDK sources are often not UTF-8 (MSVC reads a file without a BOM in
/// the system code page, usually Windows-1252: `’` and `“”` in comments are single bytes); such
/// a file is read byte for byte as Latin-1, so rewriting it and writing it back keeps every byte.
struct SourceText {
    text: String,
    latin1: bool,
}

impl SourceText {
    /// `text` in the file's own encoding.
    fn encode(&self, text: &str) -> Vec<u8> {
        if self.latin1 {
            text.chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect()
        } else {
            text.as_bytes().to_vec()
        }
    }
}

fn read_source(path: &Path) -> std::io::Result<SourceText> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => SourceText {
            text,
            latin1: false,
        },
        Err(e) => SourceText {
            text: e.into_bytes().iter().map(|&b| char::from(b)).collect(),
            latin1: true,
        },
    })
}

/// `-iquote DIR` for the directory of `src`, so a rewritten copy still finds the headers next
/// to the original (`#include "driver.h"`).
fn quote_dir(src: &Path) -> [String; 2] {
    let dir = src
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ["-iquote".into(), dir.display().to_string()]
}

/// Global functions defined in more than one object: MSVC keeps one copy of an `__inline`
/// function defined in several translation units (a COMDAT); the GNU89 inline definitions the
/// headers ask for are made weak here to the same effect.
fn weaken_duplicates(objects: &[PathBuf]) -> Result<(), BuildError> {
    if objects.len() < 2 {
        return Ok(());
    }
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for obj in objects {
        let out = Command::new("nm")
            .args(["--defined-only", "-g"])
            .arg(obj)
            .output()
            .map_err(|source| BuildError::Compiler {
                compiler: "nm".into(),
                source,
            })?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut it = line.split_whitespace().rev();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                if kind == "T" {
                    *seen.entry(name.to_string()).or_default() += 1;
                }
            }
        }
    }
    let dups: Vec<String> = seen
        .into_iter()
        .filter(|(n, c)| *c > 1 && n != "DriverEntry")
        .map(|(n, _)| format!("--weaken-symbol={n}"))
        .collect();
    if dups.is_empty() {
        return Ok(());
    }
    for obj in objects {
        run(Command::new("objcopy").args(&dups).arg(obj), "objcopy")?;
    }
    Ok(())
}

/// Every undefined function of the image must be a runtime export or an allowed libc symbol.
fn check_imports(image: &Path) -> Result<(), BuildError> {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(image)
        .output()
        .map_err(|source| BuildError::Compiler {
            compiler: "nm".into(),
            source,
        })?;
    let exports: BTreeSet<&str> = crate::exported_functions().into_iter().collect();
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let kind = it.next()?;
            let name = it.next()?;
            (kind == "U").then(|| name.split('@').next().unwrap_or(name).to_string())
        })
        .filter(|n| {
            !exports.contains(n.as_str())
                && !LIBC_IMPORTS.contains(&n.as_str())
                && !n.starts_with("__asan")
                && !n.starts_with("__ubsan")
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BuildError::MissingImports { missing })
    }
}

fn tempdir() -> Result<PathBuf, BuildError> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let p = base.join(format!("wfp-ddk-build-{}-{i}", std::process::id()));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(BuildError::Io {
        path: base,
        source: std::io::Error::other("cannot create a temporary directory"),
    })
}

/// The text of the headers `source` includes with quotes (`#include "trace.h"`, not `.tmh`),
/// looked up beside the source and in the include directories, one level deep.
fn local_headers(source: &str, path: &Path, include_dirs: &[PathBuf]) -> String {
    let dirs: Vec<&Path> = path
        .parent()
        .into_iter()
        .chain(include_dirs.iter().map(PathBuf::as_path))
        .collect();
    let mut out = String::new();
    for line in source.lines() {
        let Some(name) = line
            .trim()
            .strip_prefix("#include")
            .and_then(|r| r.trim().strip_prefix('"'))
            .and_then(|r| r.split('"').next())
            .filter(|n| !n.ends_with(".tmh"))
        else {
            continue;
        };
        if let Some(text) = dirs
            .iter()
            .find_map(|d| read_source(&d.join(name)).ok().map(|s| s.text))
        {
            out.push('\n');
            out.push_str(&text);
        }
    }
    out
}

/// The `.tmh` headers a source includes (`#include "name.tmh"`), generated from its WPP
/// configuration: `WPP_CONTROL_GUIDS` flags, `FUNC` declarations in `begin_wpp config` blocks.
pub fn tmh_files(source: &str) -> Vec<(String, String)> {
    let names: Vec<String> = source
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("#include")?.trim();
            let name = rest.strip_prefix('"')?.split('"').next()?;
            name.ends_with(".tmh").then(|| name.to_string())
        })
        .collect();
    names.into_iter().map(|n| (n, tmh_body(source))).collect()
}

/// One `FUNC Name{LEVEL=X, FLAGS=Y}(ARG, ..., MSG, ...)` declaration of a `begin_wpp config`
/// block: its name, the argument names, and the fixed values in braces.
struct WppFunc {
    name: String,
    args: Vec<String>,
    fixed_level: Option<String>,
    fixed_flags: Option<String>,
}

fn wpp_func(decl: &str) -> Option<WppFunc> {
    let (name, args) = decl.split_once('(')?;
    let name: String = name
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let fixed = decl
        .split_once('{')
        .and_then(|(_, b)| b.split_once('}'))
        .map_or("", |(b, _)| b);
    let fixed_value = |keys: &[&str]| {
        fixed.split(',').find_map(|a| {
            let (k, v) = a.split_once('=')?;
            keys.contains(&k.trim()).then(|| v.trim().to_string())
        })
    };
    // The argument list is after the braces when there are fixed values.
    let args = decl
        .rsplit_once('}')
        .map_or(args, |(_, rest)| rest.trim_start_matches('('))
        .split(')')
        .next()
        .unwrap_or("");
    Some(WppFunc {
        name,
        args: args.split(',').map(|a| a.trim().to_string()).collect(),
        fixed_level: fixed_value(&["LEVEL"]),
        fixed_flags: fixed_value(&["FLAGS", "FLAG"]),
    })
}

/// The `FUNC` declarations of every `begin_wpp config` block in `source`.
fn wpp_funcs(source: &str) -> Vec<WppFunc> {
    let mut out = Vec::new();
    let mut in_config = false;
    for line in source.lines() {
        let t = line.trim().trim_start_matches("//").trim();
        if t.starts_with("begin_wpp config") {
            in_config = true;
        } else if t.starts_with("end_wpp") {
            in_config = false;
        } else if let Some(f) = t
            .strip_prefix("FUNC ")
            .filter(|_| in_config)
            .and_then(wpp_func)
        {
            out.push(f);
        }
    }
    out
}

/// The flag names of `WPP_DEFINE_BIT(NAME)` in order: the n-th (0-based) is `1 << n`
/// (wdk-runtime.md §9).
fn wpp_bits(source: &str) -> Vec<String> {
    let mut bits: Vec<String> = Vec::new();
    for part in source.split("WPP_DEFINE_BIT(").skip(1) {
        let name: String = part
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !bits.contains(&name) && bits.len() < 32 {
            bits.push(name);
        }
    }
    bits
}

const TMH_PRELUDE: &str = "/* Generated by wfp-ffi (wfpctl driver build): WPP tracing to the host's log. */\n\
     #pragma once\n#include <ntddk.h>\n\
     #define TRACE_LEVEL_NONE 0\n#define TRACE_LEVEL_CRITICAL 1\n#define TRACE_LEVEL_FATAL 1\n\
     #define TRACE_LEVEL_ERROR 2\n#define TRACE_LEVEL_WARNING 3\n#define TRACE_LEVEL_INFORMATION 4\n\
     #define TRACE_LEVEL_VERBOSE 5\n\
     #define WPP_INIT_TRACING(DriverObject, RegistryPath) ((void)(DriverObject), (void)(RegistryPath))\n\
     #define WPP_CLEANUP(DriverObject) ((void)(DriverObject))\n\
     #define WPP_DEFINE_CONTROL_GUID(name, guid, bits) \n\
     #define WPP_DEFINE_BIT(name) \n\
     /* The driver's trace session: level and flags from its WPP_LEVEL / WPP_FLAGS parameters. */\n\
     #define WPP_CONTROL(bit) WfpRtWppControl()\n\
     #define WPP_LEVEL_ENABLED(flag) ((WfpRtWppControl().Flags & (WPP_BIT_##flag)) != 0)\n\
     #define WPP_FLAG_ENABLED(flag) WPP_LEVEL_ENABLED(flag)\n\
     #define WPP_LEVEL_LOGGER(flag) 0\n\
     #ifndef WPP_LEVEL_FLAGS_ENABLED\n\
     #define WPP_LEVEL_FLAGS_ENABLED(lvl, flags) (WPP_LEVEL_ENABLED(flags) && WPP_CONTROL(WPP_BIT_##flags).Level >= (ULONG)(lvl))\n\
     #endif\n\
     #define WFP_WPP_LEVEL_ONLY_ENABLED(lvl) (WfpRtWppControl().Level >= (ULONG)(lvl))\n\
     #define WFP_WPP_PRINT(level, fmt, ...) WfpRtWppPrint((level), __func__, __FILE__, __LINE__, fmt, ##__VA_ARGS__)\n\
     #define DoTraceMessage(flag, fmt, ...) do { if (WPP_FLAG_ENABLED(flag)) WFP_WPP_PRINT(TRACE_LEVEL_INFORMATION, fmt, ##__VA_ARGS__); } while (0)\n\
     #define DoTraceLevelMessage(level, flag, fmt, ...) do { if (WPP_LEVEL_FLAGS_ENABLED(level, flag)) WFP_WPP_PRINT(level, fmt, ##__VA_ARGS__); } while (0)\n";

/// The `.tmh` body: the prelude, `WPP_BIT_<flag>` masks, and one macro per `FUNC` that checks
/// the session's level and flags (wdk-runtime.md §9: a message fires when its flag is enabled
/// and the level is at or below the session's) before formatting anything.
fn tmh_body(source: &str) -> String {
    let mut s = String::from(TMH_PRELUDE);
    for (i, bit) in wpp_bits(source).iter().enumerate() {
        let _ = writeln!(s, "#define WPP_BIT_{bit} 0x{:08x}u", 1u32 << i);
    }
    for f in wpp_funcs(source) {
        let Some(msg) = f.args.iter().position(|a| a == "MSG") else {
            continue;
        };
        let param = |names: &[&str]| {
            f.args[..msg]
                .iter()
                .position(|a| names.contains(&a.as_str()))
                .map(|i| format!("a{i}"))
        };
        let level = param(&["LEVEL"]).or(f.fixed_level.clone());
        let flags = param(&["FLAGS", "FLAG"]).or(f.fixed_flags.clone());
        let enabled = match (&level, &flags) {
            (Some(l), Some(fl)) => format!("WPP_LEVEL_FLAGS_ENABLED({l}, {fl})"),
            (None, Some(fl)) => format!("WPP_FLAG_ENABLED({fl})"),
            (Some(l), None) => format!("WFP_WPP_LEVEL_ONLY_ENABLED({l})"),
            (None, None) => "1".to_string(),
        };
        let level = level.map_or_else(
            || "TRACE_LEVEL_INFORMATION".to_string(),
            |l| format!("({l})"),
        );
        let mut list = (0..msg)
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        if !list.is_empty() {
            list.push_str(", ");
        }
        let _ = writeln!(
            s,
            "#define {}({list}...) do {{ if ({enabled}) WFP_WPP_PRINT({level}, __VA_ARGS__); }} while (0)",
            f.name
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmh_maps_func_declarations_to_the_log() {
        let src = "#define WPP_CONTROL_GUIDS WPP_DEFINE_CONTROL_GUID(G, (1,2,3,4,5), WPP_DEFINE_BIT(A) WPP_DEFINE_BIT(X))\n// begin_wpp config\n// FUNC TraceEvents(LEVEL, FLAGS, MSG, ...);\n// FUNC TraceInfo{FLAG=X}(MSG, ...);\n// FUNC TraceAny(MSG, ...);\n// end_wpp\n#include \"driver.tmh\"\n";
        let files = tmh_files(src);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "driver.tmh");
        let tmh = &files[0].1;
        assert!(tmh.contains("#define WPP_BIT_A 0x00000001u\n#define WPP_BIT_X 0x00000002u\n"));
        assert!(tmh.contains("#define TraceEvents(a0, a1, ...) do { if (WPP_LEVEL_FLAGS_ENABLED(a0, a1)) WFP_WPP_PRINT((a0), __VA_ARGS__); } while (0)"), "{tmh}");
        assert!(tmh.contains(
            "#define TraceInfo(...) do { if (WPP_FLAG_ENABLED(X)) WFP_WPP_PRINT(TRACE_LEVEL_INFORMATION, __VA_ARGS__); } while (0)"
        ), "{tmh}");
        assert!(tmh.contains(
            "#define TraceAny(...) do { if (1) WFP_WPP_PRINT(TRACE_LEVEL_INFORMATION, __VA_ARGS__); } while (0)"
        ), "{tmh}");
        let fixed = tmh_files(
            "// begin_wpp config\n// FUNC TraceErr{LEVEL=TRACE_LEVEL_ERROR, FLAGS=X}(MSG, ...);\n// end_wpp\n#include \"d.tmh\"\n",
        );
        assert!(fixed[0].1.contains(
            "#define TraceErr(...) do { if (WPP_LEVEL_FLAGS_ENABLED(TRACE_LEVEL_ERROR, X)) WFP_WPP_PRINT((TRACE_LEVEL_ERROR), __VA_ARGS__); } while (0)"
        ), "{}", fixed[0].1);
    }
}
