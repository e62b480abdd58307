pub struct EmbeddedStore {}
