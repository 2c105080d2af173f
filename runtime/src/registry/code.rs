//! Code packages: what the FC SDKs send in `code.zipFile`, and where it is
//! kept.
//!
//! `code.zipFile` is base64 of either a zip holding the `.wasm` or, as
//! `aliyun-fc2`'s `codeZipFile=` sends it, the raw `.wasm` itself; the magic
//! bytes tell them apart. The package (what the user sent, whose CRC-64 is
//! `codeChecksum`) and the wasm inside are both stored content-addressed
//! under `code/`, written through a temporary file and a rename, so a crash
//! never leaves a half-written file under a real name.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::RegistryError;

/// CRC-64/XZ: the ECMA-182 polynomial, reflected, all-ones init and xorout —
/// the CRC-64 that Alibaba Cloud OSS and FC report as `crc64ecma`.
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A decoded upload.
#[derive(Debug, Clone)]
pub struct Package {
    pub package: Bytes,
    pub wasm: Bytes,
}

/// Splits an uploaded package into the package and its wasm. `handler` names
/// the file inside a zip (`hello.wasm`, `hello`, or FC-style `index.handler`
/// → `index.wasm`); a zip holding exactly one `.wasm` needs no name.
///
/// The wasm is stored and compiled, so its uncompressed size counts against
/// the code limit `max_bytes` like the package's: inflating stops at the
/// limit (a zip bomb costs at most `max_bytes` of memory, not what it
/// claims to expand to).
pub fn unpack(package: Bytes, handler: &str, max_bytes: u64) -> Result<Package, RegistryError> {
    if package.starts_with(b"\0asm") {
        return Ok(Package {
            wasm: package.clone(),
            package,
        });
    }
    if !package.starts_with(b"PK\x03\x04") {
        return Err(RegistryError::InvalidArgument(
            "code is neither a zip file nor a WebAssembly binary".into(),
        ));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(package.as_ref()))
        .map_err(|e| RegistryError::InvalidArgument(format!("code is not a valid zip file: {e}")))?;
    let wasm_names: Vec<String> = archive
        .file_names()
        .filter(|n| n.ends_with(".wasm") && !n.ends_with('/'))
        .map(str::to_string)
        .collect();
    let stem = handler.split('.').next().unwrap_or_default();
    let wanted = [handler.to_string(), format!("{handler}.wasm"), format!("{stem}.wasm")];
    let chosen = wanted
        .iter()
        .find(|w| {
            wasm_names
                .iter()
                .any(|n| n == *w || n.trim_start_matches("./") == w.as_str())
        })
        .and_then(|w| {
            wasm_names
                .iter()
                .find(|n| *n == w || n.trim_start_matches("./") == w.as_str())
        })
        .cloned()
        .or_else(|| (wasm_names.len() == 1).then(|| wasm_names[0].clone()));
    let Some(name) = chosen else {
        return Err(RegistryError::InvalidArgument(if wasm_names.is_empty() {
            "the zip file holds no .wasm file".into()
        } else {
            format!(
                "the zip file holds several .wasm files ({}) and handler '{handler}' names none of them",
                wasm_names.join(", ")
            )
        }));
    };
    let file = archive
        .by_name(&name)
        .map_err(|e| RegistryError::InvalidArgument(format!("cannot read {name} from the zip: {e}")))?;
    let too_large = || RegistryError::UnpackedCodeTooLarge {
        name: name.clone(),
        limit_mb: max_bytes >> 20,
    };
    if file.size() > max_bytes {
        return Err(too_large());
    }
    let mut wasm = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut wasm)
        .map_err(|e| RegistryError::InvalidArgument(format!("cannot read {name} from the zip: {e}")))?;
    if wasm.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(Package {
        package,
        wasm: Bytes::from(wasm),
    })
}

/// The content-addressed code directory.
#[derive(Debug, Clone)]
pub struct CodeDir {
    dir: PathBuf,
}

impl CodeDir {
    pub fn new(dir: PathBuf) -> std::io::Result<CodeDir> {
        std::fs::create_dir_all(&dir)?;
        Ok(CodeDir { dir })
    }

    pub fn wasm_path(&self, sha: &str) -> PathBuf {
        self.dir.join(format!("{sha}.wasm"))
    }

    pub fn package_path(&self, sha: &str) -> PathBuf {
        self.dir.join(format!("{sha}.pkg"))
    }

    /// Writes `bytes` under `path` unless it is already there.
    pub fn put(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if path.exists() {
            return Ok(());
        }
        crate::util::write_atomically(path, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &[u8])]) -> Bytes {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            for (name, data) in files {
                z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
                z.write_all(data).unwrap();
            }
            z.finish().unwrap();
        }
        Bytes::from(buf.into_inner())
    }

    const WASM: &[u8] = b"\0asm\x01\0\0\0";

    const LIMIT: u64 = 1 << 20;

    #[test]
    fn raw_wasm_is_its_own_package() {
        let p = unpack(Bytes::from_static(WASM), "index.handler", LIMIT).unwrap();
        assert_eq!(&p.wasm[..], WASM);
    }

    #[test]
    fn zip_picks_the_named_or_only_wasm() {
        let one = zip_of(&[("readme.txt", b"hi"), ("hello.wasm", WASM)]);
        assert_eq!(&unpack(one, "whatever", LIMIT).unwrap().wasm[..], WASM);
        let two = zip_of(&[("a.wasm", WASM), ("index.wasm", b"\0asm\x01\0\0\0\0")]);
        assert_eq!(unpack(two.clone(), "index.handler", LIMIT).unwrap().wasm.len(), 9);
        assert_eq!(unpack(two.clone(), "a.wasm", LIMIT).unwrap().wasm.len(), 8);
        assert!(unpack(two, "b", LIMIT).is_err());
        assert!(unpack(zip_of(&[("x.txt", b"no")]), "x", LIMIT).is_err());
        assert!(unpack(Bytes::from_static(b"garbage"), "x", LIMIT).is_err());
    }

    #[test]
    fn a_zip_bomb_stops_inflating_at_the_limit() {
        // 4 MiB of zeros deflate to a few KB; the limit is 1 MiB.
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let deflated =
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            z.start_file("bomb.wasm", deflated).unwrap();
            let mut wasm = WASM.to_vec();
            wasm.resize(4 << 20, 0);
            z.write_all(&wasm).unwrap();
            z.finish().unwrap();
        }
        let zip = Bytes::from(buf.into_inner());
        assert!(zip.len() < 64 << 10, "{} bytes", zip.len());
        let err = unpack(zip.clone(), "bomb", LIMIT).unwrap_err();
        assert!(matches!(err, RegistryError::UnpackedCodeTooLarge { .. }), "{err}");
        assert_eq!(unpack(zip, "bomb", 8 << 20).unwrap().wasm.len(), 4 << 20);
    }

    #[test]
    fn crc64_is_the_xz_variant() {
        // The CRC-64/XZ check value.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
    }
}
