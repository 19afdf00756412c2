//! Every embedded `.cu` source compiles with NVRTC (no GPU needed), a broken source is rejected
//! with its file and line, and the PTX cache keys on what it must.

use ringdet_kernels::runtime::testing::nvrtc_or_skip;
use ringdet_kernels::runtime::{CompileOptions, KernelSource, PtxCache, all_sources, compile_ptx};

#[test]
fn every_kernel_compiles_for_hopper_and_ampere() {
    let Some(version) = nvrtc_or_skip("every_kernel_compiles_for_hopper_and_ampere") else {
        return;
    };
    eprintln!("NVRTC {}.{}", version.0, version.1);
    assert!(!all_sources().is_empty());
    for (major, minor) in [(9, 0), (8, 0)] {
        let opts = CompileOptions::for_capability(major, minor);
        for src in all_sources() {
            let ptx = compile_ptx(src, &opts).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                ptx.contains(".entry"),
                "{}: no kernel entry in PTX",
                src.name
            );
            assert!(
                ptx.contains(&format!(".target sm_{major}{minor}")),
                "{}",
                src.name
            );
        }
    }
}

#[test]
fn a_broken_kernel_is_rejected_with_file_and_line() {
    if nvrtc_or_skip("a_broken_kernel_is_rejected_with_file_and_line").is_none() {
        return;
    }
    static BROKEN: KernelSource = KernelSource {
        name: "broken/broken.cu",
        code: "extern \"C\" __global__ void k(float* out) {\n    out[0] = 1.0f;\n    out[1] = undefined_name;\n}\n",
    };
    let e = compile_ptx(&BROKEN, &CompileOptions::for_capability(9, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken/broken.cu(3)"), "{e}");
    assert!(e.contains("undefined_name"), "{e}");
}

#[test]
fn ptx_cache_keys_on_source_options_and_version() {
    static A: KernelSource = KernelSource {
        name: "x/a.cu",
        code: "// a",
    };
    static B: KernelSource = KernelSource {
        name: "x/a.cu",
        code: "// b",
    };
    let dir = std::env::temp_dir().join(format!("ringdet-ptx-{}", std::process::id()));
    let cache = PtxCache::new(&dir);
    let o90 = CompileOptions::for_capability(9, 0);
    let o80 = CompileOptions::for_capability(8, 0);
    let k = cache.path_for(&A, &o90, (13, 0));
    assert_eq!(k, cache.path_for(&A, &o90, (13, 0)));
    assert_ne!(k, cache.path_for(&B, &o90, (13, 0)));
    assert_ne!(k, cache.path_for(&A, &o80, (13, 0)));
    assert_ne!(k, cache.path_for(&A, &o90, (13, 1)));
    assert!(cache.get(&k).is_none());
    cache.put(&k, "// ptx").unwrap();
    assert_eq!(cache.get(&k).as_deref(), Some("// ptx"));
    // Only the final file is left: the temporary one was renamed.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
