//! detcdctl's error type and etcdctl's exit codes (`etcdctl/ctlv3/command/error.go`).

use std::fmt;

pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_BAD_CONNECTION: i32 = 2;
pub const EXIT_INVALID_INPUT: i32 = 3;
pub const EXIT_BAD_FEATURE: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 5;
pub const EXIT_IO: i32 = 6;
pub const EXIT_BAD_ARGS: i32 = 128;

/// A failed command: printed as `Error: <message>` on stderr, exit status `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub code: i32,
    pub message: String,
}

impl CtlError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_ARGS, message)
    }

    /// A flag whose value does not parse: pflag's message (`why` is the parser's
    /// error), which cobra reports with exit status 1, unlike etcdctl's own
    /// checks of its arguments (`EXIT_BAD_ARGS`).
    pub fn bad_flag_value(flag: &str, value: &str, why: impl fmt::Display) -> Self {
        let value = super::format::go_quote(value.as_bytes());
        Self::new(
            EXIT_ERROR,
            format!("invalid argument {value} for \"--{flag}\" flag: {why}"),
        )
    }

    /// What the Go client reports for an RPC that failed: etcd's own errors by their
    /// message (`etcdserver: ...`), deadlines as Go's `context deadline exceeded`, anything
    /// else in grpc-go's `rpc error: code = X desc = Y` form.
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let msg = status.message();
        // A status made from a failed connection (not an answer of the server): the
        // connection failed after the dial (a TLS server refusing the client's
        // certificate, plain text sent to a TLS port). The Go client keeps retrying
        // until its deadline, so etcdctl reports the deadline.
        let broken_connection =
            std::error::Error::source(status).is_some_and(|e| e.is::<tonic::transport::Error>());
        let message = match status.code() {
            Code::DeadlineExceeded => "context deadline exceeded".to_string(),
            _ if broken_connection => "context deadline exceeded".to_string(),
            Code::Cancelled => "context canceled".to_string(),
            _ if msg.starts_with("etcdserver:") || msg.starts_with("mvcc:") || msg.starts_with("auth:") => {
                msg.to_string()
            }
            Code::Unavailable if msg.contains("transport") || msg.contains("connect") => {
                "context deadline exceeded".to_string()
            }
            // The same, when only the message tells (h2's errors carry no transport error).
            Code::Unknown | Code::Internal
                if msg == "transport error" || msg.starts_with("h2 protocol error") =>
            {
                "context deadline exceeded".to_string()
            }
            code => format!("rpc error: code = {} desc = {}", go_code_name(code), msg),
        };
        Self::new(EXIT_ERROR, message)
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}

/// grpc-go's `codes.Code.String()`.
fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_connections_are_deadlines_as_in_etcdctl() {
        for s in [
            tonic::Status::unknown("transport error"),
            tonic::Status::internal("h2 protocol error: http2 error"),
        ] {
            assert_eq!(CtlError::from_status(&s).message, "context deadline exceeded");
        }
        assert_eq!(
            CtlError::from_status(&tonic::Status::internal("boom")).message,
            "rpc error: code = Internal desc = boom"
        );
    }

    #[test]
    fn etcd_errors_print_their_message() {
        let s = tonic::Status::out_of_range("etcdserver: mvcc: required revision is a future revision");
        assert_eq!(
            CtlError::from_status(&s).message,
            "etcdserver: mvcc: required revision is a future revision"
        );
        let s = tonic::Status::unimplemented("unknown service");
        assert_eq!(
            CtlError::from_status(&s).message,
            "rpc error: code = Unimplemented desc = unknown service"
        );
        let s = tonic::Status::deadline_exceeded("x");
        assert_eq!(CtlError::from_status(&s).message, "context deadline exceeded");
    }
}
