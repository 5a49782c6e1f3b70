//! The Istio YAML checker (`mesh-check`): any text gives findings or a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshtrace::check::Checker;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut checker = Checker::new();
    if checker.add_istio_yaml("fuzz.yaml", text).is_ok() {
        let _ = checker.check();
    }
});
