//! README's quick start is `examples/quickstart.rs`, word for word, so it
//! cannot rot: the example is compiled with the test suite, and this test
//! fails when the two differ.

#[test]
fn readme_quickstart_is_the_quickstart_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");

    let marker = "<!-- quickstart:";
    let after_marker = &readme[readme
        .find(marker)
        .expect("README has the quickstart marker")..];
    let start = after_marker
        .find("```rust\n")
        .expect("a rust block follows the marker")
        + 8;
    let block = &after_marker[start..];
    let end = block.find("\n```").expect("the block is closed");

    assert_eq!(
        &block[..=end],
        example,
        "README's quick start differs from the example"
    );
}
