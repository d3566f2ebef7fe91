//! Self-telemetry: the metrics Sightline keeps about itself and serves on
//! `/metrics` (as opposed to the metric *store*, which keeps its users'
//! samples). Every component declares its own once with [`telemetry!`]:
//! the struct, the metrics' initial values and their help text in one
//! place, and `register` names each `<prefix>_<field>`.

pub use prometheus_client::registry::Registry;

/// Declares a component's self-metrics.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
/// use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
///
/// sightline_storage::telemetry! {
///     /// The example component's metrics.
///     pub struct ExampleTelemetry("sightline_example") {
///         /// Things done
///         done: Counter,
///         /// Duration of one thing
///         seconds: Histogram = Histogram::new(exponential_buckets(0.01, 2.0, 8)),
///     }
/// }
///
/// let mut registry = sightline_storage::telemetry::Registry::default();
/// let telemetry = ExampleTelemetry::default();
/// telemetry.register(&mut registry);
/// telemetry.done.inc();
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains("# HELP sightline_example_done Things done"));
/// assert!(text.contains("sightline_example_done_total 1"));
/// ```
#[macro_export]
macro_rules! telemetry {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($prefix:literal) {
            $( $(#[doc = $help:literal])+ $field:ident: $ty:ty $(= $init:expr)?, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            $( $(#[doc = $help])+ pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $crate::telemetry!(@init $ty $(, $init)?), )* }
            }
        }

        impl $name {
            /// Adds every metric to `registry`, named `<prefix>_<field>`.
            $vis fn register(&self, registry: &mut $crate::telemetry::Registry) {
                let registry = registry.sub_registry_with_prefix($prefix);
                $( registry.register(stringify!($field), concat!($($help),+).trim(), self.$field.clone()); )*
            }
        }
    };
    (@init $ty:ty) => { <$ty>::default() };
    (@init $ty:ty, $init:expr) => { $init };
}
