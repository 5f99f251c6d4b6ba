fn main() {
    // Debug info lets UI tests find elements (i-slint-backend-testing);
    // release builds for the image leave it out.
    let debug = std::env::var("PROFILE").as_deref() == Ok("debug");
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("lang")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        .with_debug_info(debug);
    slint_build::compile_with_config("ui/app.slint", config)
        .expect("ui/app.slint does not compile");
    println!("cargo:rerun-if-changed=lang");
}
