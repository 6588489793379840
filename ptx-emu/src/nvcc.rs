// Locating nvcc: shared by llama-kernels' build.rs (a build dependency) and ptx-emu's tests and CLI.
// Dependency-free on purpose, so that a build script can depend on ptx-emu cheaply.

/// The pip command that installs nvcc on a machine without the CUDA toolkit.
pub const NVCC_PIP_INSTALL: &str = "python3 -m pip install nvidia-cuda-nvcc==13.2.86 \
nvidia-cuda-crt==13.2.86 nvidia-cuda-runtime==13.2.86 nvidia-cuda-cccl==13.2.86 nvidia-nvvm==13.2.86";

/// The environment variables `find_nvcc` reads, in the order it reads them.
pub const NVCC_ENV_VARS: [&str; 3] = ["NVCC", "CUDA_HOME", "CUDA_PATH"];

/// Finds nvcc, in this order: `$NVCC`; `$CUDA_HOME/bin/nvcc`; `$CUDA_PATH/bin/nvcc`;
/// `/usr/local/cuda/bin/nvcc`; `nvcc` on `PATH`; the PyPI wheels (`site-packages/nvidia/cu13/bin/nvcc`, and
/// `cu12`) of every `python3`/`python` site directory. Never runs anything but `python3 -c` for the last.
/// Returns a message naming the pip command when none is found.
pub fn find_nvcc() -> Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    let exists = |p: &PathBuf| p.is_file();
    if let Some(p) = std::env::var_os("NVCC") {
        let p = PathBuf::from(p);
        return if exists(&p) {
            Ok(p)
        } else {
            Err(format!("NVCC={} does not exist", p.display()))
        };
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            let p = PathBuf::from(root).join("bin").join("nvcc");
            if exists(&p) {
                return Ok(p);
            }
        }
    }
    let usr = PathBuf::from("/usr/local/cuda/bin/nvcc");
    if exists(&usr) {
        return Ok(usr);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nvcc");
            if exists(&p) {
                return Ok(p);
            }
        }
    }
    let script =
        "import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))";
    for python in ["python3", "python"] {
        let Ok(out) = std::process::Command::new(python).args(["-c", script]).output() else {
            continue;
        };
        for dir in String::from_utf8_lossy(&out.stdout).lines() {
            for cu in ["cu13", "cu12"] {
                let p = PathBuf::from(dir).join("nvidia").join(cu).join("bin").join("nvcc");
                if exists(&p) {
                    return Ok(p);
                }
            }
        }
    }
    Err(format!(
        "nvcc not found (looked at $NVCC, $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin, PATH and the \
         python `nvidia/cu13` wheels). Install it with:\n    {NVCC_PIP_INSTALL}\nor set NVCC=/path/to/nvcc"
    ))
}
