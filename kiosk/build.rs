fn main() {
    // Debug info (element names) lets UI tests and benchmarks find the
    // elements a visitor taps (i-slint-backend-testing); it is on in every
    // profile so the benchmarked binary is the shipped one.
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("lang")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        .with_debug_info(true);
    slint_build::compile_with_config("ui/app.slint", config)
        .expect("ui/app.slint does not compile");
    println!("cargo:rerun-if-changed=lang");
}
