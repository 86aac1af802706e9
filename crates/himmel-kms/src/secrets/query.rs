//! A small builder for WHERE clauses with `$n` parameters, so filters of
//! list requests stay bound values and never become SQL text.

use himmel_db::sqlx;

#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Int(i64),
}

#[derive(Debug, Default)]
pub struct Where {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    /// Adds a clause in which `?` stands for the next parameter.
    pub fn add(&mut self, clause: &str, param: Param) {
        self.params.push(param);
        let n = self.params.len();
        self.clauses.push(clause.replace('?', &format!("${n}")));
    }

    /// Placeholder of the next parameter (for LIMIT and OFFSET).
    pub fn next_placeholder(&self, offset: usize) -> String {
        format!("${}", self.params.len() + 1 + offset)
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for p in &self.params {
            q = match p {
                Param::Text(t) => q.bind(t.clone()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }

    pub fn bind_scalar<'q, O>(
        &self,
        mut q: sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
        for p in &self.params {
            q = match p {
                Param::Text(t) => q.bind(t.clone()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }
}
