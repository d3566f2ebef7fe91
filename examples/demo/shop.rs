//! The shop: a gateway in front of orders, payments and inventory, with a
//! Postgres client in orders and inventory and a bank API behind payments.
//! Calls between services carry W3C trace context in headers the way HTTP
//! calls would; latency comes from real sleeps, so the SDK times the spans.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::metrics::{Counter, Gauge, Histogram, UpDownCounter};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::telemetry::{Target, Telemetry};

/// A uniform number in [0, 1).
fn roll() -> f64 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(DRAWS.fetch_add(1, Ordering::Relaxed));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn chance(p: f64) -> bool {
    roll() < p
}

/// Milliseconds between `low` and `high`, skewed towards `low` like real
/// latencies.
fn millis(low: f64, high: f64) -> Duration {
    let r = roll();
    Duration::from_secs_f64((low + (high - low) * r * r * r) / 1000.0)
}

fn pick<'a>(items: &[&'a str]) -> &'a str {
    items[(roll() * items.len() as f64) as usize % items.len()]
}

const PRODUCTS: [&str; 8] =
    ["espresso-beans", "grinder", "kettle", "mug", "filter-papers", "scale", "dripper", "tamper"];

/// One service: its telemetry and the instruments every service has.
pub struct Service {
    name: &'static str,
    t: Telemetry,
    duration: Histogram<f64>,
    db_duration: Histogram<f64>,
    db_connections: UpDownCounter<i64>,
}

impl Service {
    fn new(target: &Target, name: &'static str, instance: u32) -> anyhow::Result<Self> {
        let t = Telemetry::new(target, name, instance)?;
        let duration = t
            .meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            .build();
        let db_duration = t
            .meter
            .f64_histogram("db.client.operation.duration")
            .with_unit("s")
            .with_description("Duration of database client operations.")
            .with_boundaries(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
            .build();
        let db_connections =
            t.meter.i64_up_down_counter("db.client.connection.count").with_description("Connections in use.").build();
        Ok(Self { name, t, duration, db_duration, db_connections })
    }

    /// A log record in the current span's context.
    fn log(&self, severity: Severity, body: String, attributes: &[(&'static str, AnyValue)]) {
        let mut record = self.t.logger.create_log_record();
        record.set_severity_number(severity);
        record.set_severity_text(severity.name());
        record.set_body(AnyValue::from(body));
        record.add_attributes(attributes.iter().cloned());
        self.t.logger.emit(record);
    }

    /// Marks the current span failed, with an exception event, as the SDKs'
    /// HTTP and database instrumentations do.
    fn fail(&self, kind: &'static str, message: &str) {
        let cx = Context::current();
        let span = cx.span();
        span.add_event(
            "exception",
            vec![KeyValue::new("exception.type", kind), KeyValue::new("exception.message", message.to_owned())],
        );
        span.set_status(Status::error(message.to_owned()));
    }

    /// A Postgres query from this service, as a client span.
    async fn query(&self, operation: &'static str, table: &'static str, statement: &'static str, latency: Duration) {
        let span = self
            .t
            .tracer
            .span_builder(format!("{operation} {table}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.namespace", "shop"),
                KeyValue::new("db.operation.name", operation),
                KeyValue::new("db.collection.name", table),
                KeyValue::new("db.query.text", statement),
                KeyValue::new("server.address", "postgres"),
                KeyValue::new("server.port", 5432),
            ])
            .start(&self.t.tracer);
        let cx = Context::current_with_span(span);
        let started = Instant::now();
        self.db_connections.add(1, &[]);
        tokio::time::sleep(latency).with_context(cx.clone()).await;
        self.db_connections.add(-1, &[]);
        let seconds = started.elapsed().as_secs_f64();
        self.db_duration.record(
            seconds,
            &[KeyValue::new("db.operation.name", operation), KeyValue::new("db.collection.name", table)],
        );
        if seconds > 0.1 {
            let _guard = cx.clone().attach();
            self.log(
                Severity::Warn,
                format!("slow query on {table} took {} ms", (seconds * 1000.0) as u64),
                &[("db.collection.name", AnyValue::from(table))],
            );
        }
        cx.span().end();
    }
}

/// An HTTP call from `caller` to `callee`: a client span in the caller, the
/// trace context carried in headers, a server span in the callee around
/// `handler`. Returns the response status.
async fn call(
    caller: &Service,
    callee: &Service,
    method: &str,
    route: &str,
    handler: impl AsyncFnOnce() -> u16,
) -> u16 {
    let propagator = TraceContextPropagator::new();
    let client = caller
        .t
        .tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("url.full", format!("http://{}:8080{route}", callee.name)),
            KeyValue::new("server.address", callee.name),
            KeyValue::new("server.port", 8080),
        ])
        .start(&caller.t.tracer);
    let client_cx = Context::current_with_span(client);
    let mut headers = HashMap::new();
    propagator.inject_context(&client_cx, &mut headers);
    tokio::time::sleep(millis(0.3, 2.0)).await;

    let status = serve(callee, &propagator.extract(&headers), method, route, handler).await;

    tokio::time::sleep(millis(0.3, 2.0)).await;
    let span = client_cx.span();
    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
    if status >= 400 {
        span.set_status(Status::error(format!("HTTP {status}")));
    }
    span.end();
    status
}

/// The server side of a request: a server span, the handler run inside it,
/// the request duration recorded.
async fn serve(
    service: &Service,
    parent: &Context,
    method: &str,
    route: &str,
    handler: impl AsyncFnOnce() -> u16,
) -> u16 {
    let span = service
        .t
        .tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("network.protocol.version", "1.1"),
        ])
        .start_with_context(&service.t.tracer, parent);
    let cx = parent.with_span(span);
    let started = Instant::now();
    let status = handler().with_context(cx.clone()).await;
    service.duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
    let span = cx.span();
    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
    // Server spans fail on 5xx only: a 4xx is the client's doing.
    if status >= 500 {
        span.set_status(Status::error(format!("HTTP {status}")));
    }
    span.end();
    status
}

/// The whole shop and its business metrics.
pub struct Shop {
    gateway: Service,
    orders: Service,
    payments: Service,
    inventory: Service,
    active: UpDownCounter<i64>,
    placed: Counter<u64>,
    declined: Counter<u64>,
    stock: Gauge<i64>,
    order_ids: AtomicU64,
}

impl Shop {
    pub fn new(target: &Target) -> anyhow::Result<Self> {
        let gateway = Service::new(target, "gateway", 1)?;
        let orders = Service::new(target, "orders", 2)?;
        let payments = Service::new(target, "payments", 3)?;
        let inventory = Service::new(target, "inventory", 4)?;
        let active = gateway.t.meter.i64_up_down_counter("http.server.active_requests").build();
        let placed = orders.t.meter.u64_counter("shop.orders.placed").with_description("Orders placed.").build();
        let declined = payments.t.meter.u64_counter("shop.payments.declined").build();
        let stock = inventory.t.meter.i64_gauge("shop.inventory.stock").with_description("Items in stock.").build();
        Ok(Self {
            gateway,
            orders,
            payments,
            inventory,
            active,
            placed,
            declined,
            stock,
            order_ids: AtomicU64::new(1000),
        })
    }

    /// One request from a browser, end to end. Returns its status.
    pub async fn request(&self) -> u16 {
        let user = format!("u-{}", (roll() * 5000.0) as u32);
        let r = roll();
        let (method, route) = match r {
            r if r < 0.45 => ("GET", "/api/products/{id}"),
            r if r < 0.65 => ("GET", "/api/cart"),
            r if r < 0.9 => ("POST", "/api/checkout"),
            _ => ("GET", "/api/orders/{id}"),
        };
        self.active.add(1, &[]);
        let g = &self.gateway;
        let status = serve(g, &Context::new(), method, route, async || {
            Context::current().span().set_attribute(KeyValue::new("user.id", user.clone()));
            let status = match route {
                "/api/products/{id}" => self.product(pick(&PRODUCTS)).await,
                "/api/cart" => self.cart(&user).await,
                "/api/checkout" => self.checkout(&user).await,
                _ => self.order_status().await,
            };
            if status >= 500 {
                g.log(
                    Severity::Error,
                    format!("{method} {route} failed with {status} for user {user}"),
                    &[("user.id", AnyValue::from(user.clone()))],
                );
            }
            status
        })
        .await;
        self.active.add(-1, &[]);
        status
    }

    async fn product(&self, product: &'static str) -> u16 {
        call(&self.gateway, &self.inventory, "GET", "/products/{id}", async || {
            let inv = &self.inventory;
            let latency = if chance(0.04) { millis(120.0, 600.0) } else { millis(1.0, 8.0) };
            inv.query("SELECT", "products", "SELECT * FROM products WHERE sku = $1", latency).await;
            inv.log(Severity::Debug, format!("served product {product}"), &[("product.sku", AnyValue::from(product))]);
            200
        })
        .await
    }

    async fn cart(&self, user: &str) -> u16 {
        call(&self.gateway, &self.orders, "GET", "/cart", async || {
            self.orders.query("SELECT", "carts", "SELECT * FROM carts WHERE user_id = $1", millis(1.0, 10.0)).await;
            self.orders.log(
                Severity::Info,
                format!("cart loaded for {user} with {} items", (roll() * 6.0) as u32),
                &[("user.id", AnyValue::from(user.to_owned()))],
            );
            200
        })
        .await
    }

    async fn order_status(&self) -> u16 {
        call(&self.gateway, &self.orders, "GET", "/orders/{id}", async || {
            self.orders.query("SELECT", "orders", "SELECT * FROM orders WHERE id = $1", millis(1.0, 6.0)).await;
            200
        })
        .await
    }

    /// The long path: reserve stock, charge the card, store the order.
    async fn checkout(&self, user: &str) -> u16 {
        let order = self.order_ids.fetch_add(1, Ordering::Relaxed);
        let product = pick(&PRODUCTS);
        let amount = 5.0 + (roll() * 19500.0).round() / 100.0;
        call(&self.gateway, &self.orders, "POST", "/orders", async || {
            let o = &self.orders;
            Context::current().span().set_attribute(KeyValue::new("order.id", order as i64));
            let reserved =
                call(o, &self.inventory, "POST", "/reservations", async || self.reserve(product, order).await).await;
            if reserved != 200 {
                o.log(
                    Severity::Warn,
                    format!("order {order} rejected: {product} out of stock"),
                    &[("order.id", AnyValue::from(order as i64))],
                );
                return 409;
            }
            let charged = call(o, &self.payments, "POST", "/charges", async || self.charge(order, amount).await).await;
            if charged == 402 {
                return 402;
            }
            if charged >= 500 {
                o.fail("PaymentUnavailable", &format!("payment for order {order} failed with {charged}"));
                o.log(
                    Severity::Error,
                    format!("order {order} failed: payment service answered {charged}"),
                    &[("order.id", AnyValue::from(order as i64))],
                );
                return 502;
            }
            if chance(0.005) {
                o.query(
                    "INSERT",
                    "orders",
                    "INSERT INTO orders (id, user_id, sku, amount) VALUES ($1, $2, $3, $4)",
                    millis(800.0, 1500.0),
                )
                .await;
                o.fail("DeadlockDetected", "deadlock detected while inserting order");
                o.log(
                    Severity::Error,
                    format!("order {order} not stored: deadlock detected"),
                    &[("order.id", AnyValue::from(order as i64))],
                );
                return 500;
            }
            o.query(
                "INSERT",
                "orders",
                "INSERT INTO orders (id, user_id, sku, amount) VALUES ($1, $2, $3, $4)",
                millis(2.0, 15.0),
            )
            .await;
            self.placed.add(1, &[KeyValue::new("product.sku", product)]);
            o.log(
                Severity::Info,
                format!("order {order} placed by {user}: {product} for {amount:.2} USD"),
                &[
                    ("order.id", AnyValue::from(order as i64)),
                    ("user.id", AnyValue::from(user.to_owned())),
                    ("order.amount", AnyValue::from(amount)),
                ],
            );
            201
        })
        .await
    }

    async fn reserve(&self, product: &'static str, order: u64) -> u16 {
        let inv = &self.inventory;
        let slow = chance(0.05);
        let latency = if slow { millis(150.0, 700.0) } else { millis(1.0, 12.0) };
        inv.query("UPDATE", "stock", "UPDATE stock SET reserved = reserved + 1 WHERE sku = $1", latency).await;
        if chance(0.02) {
            inv.log(
                Severity::Warn,
                format!("no stock left for {product}"),
                &[("product.sku", AnyValue::from(product))],
            );
            self.stock.record(0, &[KeyValue::new("product.sku", product)]);
            return 409;
        }
        self.stock.record((roll() * 200.0) as i64 + 1, &[KeyValue::new("product.sku", product)]);
        inv.log(
            Severity::Info,
            format!("reserved 1 x {product} for order {order}"),
            &[("order.id", AnyValue::from(order as i64)), ("product.sku", AnyValue::from(product))],
        );
        200
    }

    async fn charge(&self, order: u64, amount: f64) -> u16 {
        let p = &self.payments;
        let bank =
            p.t.tracer
                .span_builder("POST /v1/charges")
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("server.address", "api.bank.example"),
                    KeyValue::new("peer.service", "bank"),
                ])
                .start(&p.t.tracer);
        let cx = Context::current_with_span(bank);
        let timeout = chance(0.01);
        let latency = if timeout { millis(2000.0, 3000.0) } else { millis(40.0, 250.0) };
        tokio::time::sleep(latency).with_context(cx.clone()).await;
        let _guard = cx.clone().attach();
        let status = if timeout {
            p.fail("TimeoutError", "bank did not answer within 2 s");
            p.log(
                Severity::Error,
                format!("charge for order {order} timed out after {} ms", latency.as_millis()),
                &[("order.id", AnyValue::from(order as i64))],
            );
            504
        } else if chance(0.03) {
            self.declined.add(1, &[KeyValue::new("reason", "insufficient_funds")]);
            p.log(
                Severity::Warn,
                format!("card declined for order {order}: insufficient funds"),
                &[("order.id", AnyValue::from(order as i64)), ("order.amount", AnyValue::from(amount))],
            );
            402
        } else {
            p.log(
                Severity::Info,
                format!("charged {amount:.2} USD for order {order}"),
                &[("order.id", AnyValue::from(order as i64)), ("order.amount", AnyValue::from(amount))],
            );
            200
        };
        cx.span().set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        cx.span().end();
        status
    }

    pub fn shutdown(&self) {
        for s in [&self.gateway, &self.orders, &self.payments, &self.inventory] {
            s.t.shutdown();
        }
    }
}
