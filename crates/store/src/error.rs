#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    #[error("database: {0}")]
    Database(String),
    #[error("the store has shut down")]
    Closed,
}
