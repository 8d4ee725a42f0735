//! One module per subcommand.

/// `sendtime events attribution`: sends joined with the engagement that followed them.
pub mod attribution;
/// `sendtime audience score|select|evaluate`: send-worthiness scores, selection, evaluation.
pub mod audience;
/// `sendtime baseline`: a fixed-body server on `serve`'s HTTP stack, the benchmarks' limit.
pub mod baseline;
/// `sendtime campaign send` and `campaign plan`: their flags and `run()`.
pub mod campaign;
/// `sendtime copy slots|list|get|put`: marketer-editable copy records.
pub mod copy;
/// `sendtime data generate` and `data load`, and [`data::load`], the bulk load behind the latter.
pub mod data;
/// `sendtime events import`: Braze Currents (Avro, local or S3) into the events format.
pub mod events;
/// `sendtime events send`: a file of events through the API, paced, retried, resumable.
pub mod events_send;
/// `sendtime loadtest` and `sendtime loadtest merge`.
pub mod loadtest;
/// `sendtime audience push`: scores out to Braze (`/users/track` or Cloud Data Ingestion).
pub mod push;
/// `sendtime serve`: the local HTTP server over demo data, a JSON Lines file or DynamoDB.
pub mod serve;
