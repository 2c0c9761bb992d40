//! What the two front doors, `http` and `mcp`, share: the state every handler reaches, Coder's
//! error body, where a request carries its token, and the layer stack `app` puts around both.

pub mod credentials;
pub mod error;
pub mod stack;
pub mod state;
pub mod transport;

pub use error::{ApiError, ApiResult};
pub use state::{AppParts, AppState, HttpSettings};
